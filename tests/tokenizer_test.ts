import assert from "node:assert/strict";
import { decode, encode, END_OF_TEXT } from "../src/tokenizer.ts";

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
