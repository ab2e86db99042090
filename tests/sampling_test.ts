// Sampling on the GPU: frequencies, top-k, top-p, temperature, seeds, end token, streaming.
import assert from "node:assert/strict";
import { GPTModel } from "../src/model/model.ts";
import { generate, generateTextSimple, stream } from "../src/model/generate.ts";
import { forwardRef } from "../src/engine/reference.ts";
import { decode, encode, TextStreamer } from "../src/text/tokenizer.ts";
import { randomParams, tensorsOf } from "./_helpers.ts";
import { validateConfig } from "../src/weights/config.ts";
import { main } from "../src/cli/cli.ts";
import { serve } from "../src/serve/server.ts";

const CFG = { vocab_size: 10, context_length: 16, emb_dim: 16, n_heads: 2, n_layers: 1, drop_rate: 0, qkv_bias: true };
const PROMPT = [3, 1, 4];

async function tinyModel() {
  const p = randomParams(CFG, 42, 1);
  const model = await GPTModel.fromTensors(CFG, tensorsOf(CFG, p));
  const logits = forwardRef(validateConfig(CFG), p, PROMPT);
  return { model, last: Array.from(logits.subarray((PROMPT.length - 1) * CFG.vocab_size)) };
}

function softmax(l: number[], t: number): number[] {
  const m = Math.max(...l);
  const e = l.map((v) => Math.exp((v - m) / t));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** First new token of `rows` copies of the prompt, over `calls` seeds. */
async function draws(model: GPTModel, rows: number, calls: number, opts: Record<string, number>): Promise<number[]> {
  const out: number[] = [];
  for (let c = 0; c < calls; c++) {
    const r = await generate(model, Array.from({ length: rows }, () => PROMPT), {
      maxNewTokens: 1,
      seed: 1000 + c,
      ...opts,
    });
    for (const row of r) out.push(row[PROMPT.length]);
  }
  return out;
}

/** Asserts each frequency is within 5 standard deviations (plus 1/n) of its probability. */
function assertFrequencies(samples: number[], probs: number[]) {
  const n = samples.length;
  const counts = new Array(probs.length).fill(0);
  for (const s of samples) counts[s]++;
  probs.forEach((p, i) => {
    const tol = 5 * Math.sqrt(p * (1 - p) / n) + 1 / n;
    assert.ok(
      Math.abs(counts[i] / n - p) <= tol,
      `token ${i}: frequency ${counts[i] / n}, probability ${p.toFixed(4)} (±${tol.toFixed(4)})`,
    );
  });
}

Deno.test("generate() sampling: frequencies match the softmax probabilities at temperature 1 and 2", async () => {
  const { model, last } = await tinyModel();
  using _ = model;
  for (const t of [1, 2]) {
    const probs = softmax(last, t);
    assertFrequencies(await draws(model, 1000, 4, { temperature: t }), probs);
  }
});

Deno.test("generate() top-k never leaves the k largest logits, and keeps their relative probabilities", async () => {
  const { model, last } = await tinyModel();
  using _ = model;
  const order = [...last.keys()].sort((a, b) => last[b] - last[a]);
  const top3 = new Set(order.slice(0, 3));
  const samples = await draws(model, 1000, 3, { temperature: 1.5, topK: 3 });
  assert.ok(samples.every((s) => top3.has(s)), "a token outside the top 3 was sampled");
  const kept = last.map((v, i) => top3.has(i) ? v : -Infinity);
  assertFrequencies(samples, softmax(kept, 1.5));
});

Deno.test("generate() top-p at its boundaries: 1 keeps everything, a tiny top-p is greedy", async () => {
  const { model, last } = await tinyModel();
  using _ = model;
  const rows = Array.from({ length: 64 }, () => PROMPT);
  assert.deepEqual(
    await generate(model, rows, { maxNewTokens: 5, temperature: 1, topP: 1, seed: 5 }),
    await generate(model, rows, { maxNewTokens: 5, temperature: 1, seed: 5 }),
  );
  const greedy = await generateTextSimple(model, rows, 5, 16);
  assert.deepEqual(await generate(model, rows, { maxNewTokens: 5, temperature: 1, topP: 1e-6, seed: 5 }), greedy);
  // top-p 0.5: only the most likely tokens whose mass reaches 0.5 are drawn
  const probs = softmax(last, 1);
  const order = [...probs.keys()].sort((a, b) => probs[b] - probs[a]);
  const keep = new Set<number>();
  let mass = 0;
  for (const i of order) {
    if (mass >= 0.5) break;
    keep.add(i);
    mass += probs[i];
  }
  const samples = await draws(model, 500, 2, { temperature: 1, topP: 0.5 });
  assert.ok(samples.every((s) => keep.has(s)), `sampled outside the top-p set ${[...keep]}`);
});

Deno.test("generate() is reproducible: same seed same ids, another seed other ids; temperature 0 is greedy", async () => {
  const { model } = await tinyModel();
  using _ = model;
  const rows = [PROMPT, PROMPT];
  const a = await generate(model, rows, { maxNewTokens: 12, temperature: 1.2, seed: 7 });
  assert.deepEqual(await generate(model, rows, { maxNewTokens: 12, temperature: 1.2, seed: 7 }), a);
  assert.notDeepEqual(await generate(model, rows, { maxNewTokens: 12, temperature: 1.2, seed: 8 }), a);
  assert.notDeepEqual(a[0], a[1], "rows of a batch draw independently");
  assert.deepEqual(
    await generate(model, rows, { maxNewTokens: 12, temperature: 0, seed: 7 }),
    await generateTextSimple(model, rows, 12, 16),
  );
});

Deno.test("generate() with eosId stops each row before appending it; rows come back with their own lengths", async () => {
  const { model } = await tinyModel();
  using _ = model;
  const g = await generate(model, [PROMPT], { maxNewTokens: 10, temperature: 1, seed: 3 });
  const eos = g[0][PROMPT.length + 2];
  const firstEos = g[0].indexOf(eos, PROMPT.length);
  const cut = await generate(model, [PROMPT], { maxNewTokens: 10, temperature: 1, seed: 3, eosId: eos });
  assert.deepEqual(cut[0], g[0].slice(0, firstEos));
  // a batch: row lengths differ, each cut at its own first eos
  const rows = [PROMPT, [5, 9, 2]];
  const full = await generate(model, rows, { maxNewTokens: 20, temperature: 1, seed: 11 });
  const got = await generate(model, rows, { maxNewTokens: 20, temperature: 1, seed: 11, eosId: eos });
  full.forEach((r, b) => {
    const at = r.indexOf(eos, 3);
    assert.deepEqual(got[b], at < 0 ? r : r.slice(0, at), `row ${b}`);
  });
});

Deno.test("generate() rejects bad sampling options with a clear error", async () => {
  const { model } = await tinyModel();
  using _ = model;
  await assert.rejects(
    generate(model, [PROMPT], { maxNewTokens: 1, temperature: -1 }),
    /temperature '-1' must be 0 \(greedy\) or a positive number/,
  );
  await assert.rejects(
    generate(model, [PROMPT], { maxNewTokens: 1, temperature: 1, topK: 0 }),
    /topK '0' must be an integer of at least 1/,
  );
  await assert.rejects(
    generate(model, [PROMPT], { maxNewTokens: 1, temperature: 1, topP: 0 }),
    /topP '0' must be in \(0, 1\]/,
  );
  await assert.rejects(generate(model, [PROMPT], { maxNewTokens: 1, temperature: 1, topP: 1.5 }), /topP '1.5'/);
  await assert.rejects(generate(model, [PROMPT], { maxNewTokens: 1, eosId: 10 }), /eosId '10' is outside \[0, 10\)/);
  await assert.rejects(generate(model, [PROMPT], { maxNewTokens: 1, temperature: 1, seed: -3 }), /seed '-3'/);
});

Deno.test("TextStreamer never splits a UTF-8 character, and its pieces add up to the decoded ids", () => {
  const text = "Hi 🙂 café — naïve 日本語 🎉!";
  const ids = encode(text);
  for (const step of [1, 2, 3]) {
    const s = new TextStreamer();
    const pieces: string[] = [];
    for (let i = 0; i < ids.length; i += step) pieces.push(s.push(ids.slice(i, i + step)));
    pieces.push(s.flush());
    assert.equal(pieces.join(""), text);
    assert.ok(pieces.every((p) => !p.includes("\uFFFD")), `a piece ended inside a character (step ${step})`);
  }
});

Deno.test("stream() yields text whose concatenation equals the decoded ids, for an emoji prompt too, and stops on abort", async () => {
  const cfg = {
    vocab_size: 50257,
    context_length: 32,
    emb_dim: 16,
    n_heads: 2,
    n_layers: 1,
    drop_rate: 0,
    qkv_bias: false,
  };
  using model = await GPTModel.create(cfg, { seed: 2 });
  for (const prompt of ["Hello, I am", "🙂 café"]) {
    const opts = { maxNewTokens: 20, temperature: 1, seed: 9 };
    const ids = (await generate(model, [encode(prompt)], opts))[0].slice(encode(prompt).length);
    const pieces: string[] = [];
    for await (const p of stream(model, prompt, { ...opts, chunkSize: 3 })) pieces.push(p);
    assert.equal(pieces.join(""), decode(ids));
    assert.ok(pieces.length > 1, "the text came in several pieces");
  }
  const ac = new AbortController();
  const got: string[] = [];
  for await (const p of stream(model, "Hello", { maxNewTokens: 30, chunkSize: 2, signal: ac.signal })) {
    got.push(p);
    ac.abort();
  }
  assert.equal(got.length, 1, "no piece after the abort");
  // the model is free again afterwards
  assert.equal((await generate(model, [[1, 2]], { maxNewTokens: 2 }))[0].length, 4);
});

Deno.test("a sampling rule is written once: the library, the command line and the server word it with their own names", async () => {
  using model = await GPTModel.create(
    { vocab_size: 50257, context_length: 16, emb_dim: 16, n_heads: 2, n_layers: 1, drop_rate: 0, qkv_bias: false },
    { seed: 1 },
  );
  const rule = /'1e-9' is below 1e-6, where float32 cannot tell it from 0/;
  await assert.rejects(
    () => generate(model, [[1]], { maxNewTokens: 1, temperature: 1, topP: 1e-9 }),
    (e: Error) => e instanceof RangeError && /topP '1e-9'/.test(e.message) && rule.test(e.message),
  );
  const err: string[] = [];
  assert.equal(await main(["--temperature", "1", "--top-p", "1e-9", "x"], () => {}, (s) => err.push(s)), 2);
  assert.match(err[0], /--top-p '1e-9'/);
  assert.match(err[0], rule);
  const server = await serve(model, { port: 0 });
  try {
    const res = await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt2", prompt: "Hi", max_tokens: 1, temperature: 1, top_p: 1e-9 }),
    });
    assert.equal(res.status, 400);
    const { error } = await res.json();
    assert.equal(error.param, "top_p");
    assert.match(error.message, /'top_p' '1e-9'/);
    assert.match(error.message, rule);
  } finally {
    await server.shutdown();
  }
});
