import assert from "node:assert/strict";
import { decode, encode, END_OF_TEXT } from "../src/text/tokenizer.ts";

Deno.test("encode() and decode() are tiktoken's gpt2", () => {
  assert.deepEqual(encode("Hello, I am"), [15496, 11, 314, 716]);
  assert.equal(
    decode([15496, 11, 314, 716, 27018, 24086, 47843, 30961, 42348, 7267]),
    "Hello, I am Featureiman Byeswickattribute argue",
  );
  assert.deepEqual(encode("<|endoftext|>"), [END_OF_TEXT]);
  const s = "Every effort moves you — café 🙂";
  assert.equal(decode(encode(s)), s);
});

Deno.test("encode() gives js-tiktoken's ids on ordinary text, long runs without spaces and random mixes", async () => {
  const { Tiktoken } = await import("js-tiktoken/lite");
  const { default: ranks } = await import("js-tiktoken/ranks/gpt2");
  const ref = new Tiktoken(ranks);
  const texts = [
    await Deno.readTextFile(new URL("../README.md", import.meta.url)),
    await Deno.readTextFile(new URL("../src/weights/hub.ts", import.meta.url)),
    "ab".repeat(300),
    "中文字符测试".repeat(40),
    "x".repeat(400),
    "1234567890".repeat(30),
    "🙂🙃 emoji ünïcödé naïve café <|endoftext|> after <|endoftext|>",
    "  spaces   and\n\n\ttabs  \r\n",
  ];
  // random mixes of letters, digits, spaces, punctuation, accents, CJK and emoji
  const alphabet = [..."aaabbcdeeefghiklmnoprsst  '.,-!?0123é中字🙂\n"];
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let i = 0; i < 30; i++) {
    texts.push(
      Array.from({ length: 1 + Math.floor(next() * 300) }, () => alphabet[Math.floor(next() * alphabet.length)]).join(
        "",
      ),
    );
  }
  for (const t of texts) assert.deepEqual(encode(t), ref.encode(t, ["<|endoftext|>"]), JSON.stringify(t.slice(0, 40)));
});

Deno.test("encode() of 10,000 characters without spaces finishes (linear-logarithmic merges, not quadratic)", () => {
  // a bound for hangs only; the speed itself is measured in bench/tokenizer_bench.ts
  for (const t of ["ab".repeat(5000), "中文字符测试汉语".repeat(1250), "a".repeat(10000)]) {
    const ids = encode(t);
    assert.equal(decode(ids), t);
  }
});
