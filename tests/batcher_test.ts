// Continuous batching: ragged rows share steps and each request gets what it would get alone.
import assert from "node:assert/strict";
import { GPTModel } from "../src/model/model.ts";
import { generate } from "../src/model/generate.ts";
import { Batcher, BatchQueueFullError, type BatchRequestOptions } from "../src/model/batcher.ts";
import { f32File, fixture, TESTDATA } from "./_helpers.ts";
import { SMALL } from "./_server.ts";

interface Fx {
  input_ids: number[][];
  generated_ids: number[][];
  logits_shape: number[];
}

const fx = fixture<Fx>("tiny_book.json");
const [, T, V] = fx.logits_shape;

function loadTiny(): Promise<GPTModel> {
  return GPTModel.load(`${TESTDATA}tiny_book.safetensors`);
}

/** What `generate` gives a request alone: row `row` of a batch of `row + 1` copies of the prompt. */
async function alone(model: GPTModel, prompt: number[], o: BatchRequestOptions): Promise<number[]> {
  const { row = 0, logprobs: _, ...rest } = o;
  const out = await generate(model, Array.from({ length: row + 1 }, () => prompt), rest);
  return out[row].slice(prompt.length);
}

Deno.test("Batcher: ragged prompts share steps, greedy ids equal PyTorch's and seeded draws equal generate() alone", async () => {
  using model = await loadTiny();
  const ctx = model.config.context_length;
  // prefixes of the fixture's rows: lengths 1 to 9, joining while others decode
  const cases: [number[], BatchRequestOptions][] = [];
  for (let i = 0; i < 12; i++) {
    const row = fx.input_ids[i % 2];
    const prompt = row.slice(0, 1 + (i * 5) % T);
    const maxNewTokens = 1 + (i * 7) % (ctx - prompt.length);
    const o: BatchRequestOptions = i % 3 === 0 ? { maxNewTokens } : {
      maxNewTokens,
      temperature: 0.5 + i / 10,
      seed: 100 + i,
      row: i % 4,
      ...(i % 2 ? { topK: 20 } : { topP: 0.9 }),
    };
    cases.push([prompt, o]);
  }
  const expected = [];
  for (const [p, o] of cases) expected.push(await alone(model, p, o));
  const batcher = new Batcher(model, { maxBatch: 5 });
  const reqs = cases.map(([p, o]) => batcher.add(p, o));
  assert.equal(batcher.active + batcher.queued, 12);
  const got = await Promise.all(reqs.map((r) => r.result));
  for (let i = 0; i < cases.length; i++) {
    assert.deepEqual(got[i].ids, expected[i], `request ${i}`);
    assert.equal(got[i].finishReason, "length");
  }
  // greedy prefixes of the full rows: the ids PyTorch generated (before its window slides)
  const full = fx.input_ids.map((p) => batcher.add(p, { maxNewTokens: ctx - T }));
  for (let b = 0; b < 2; b++) {
    assert.deepEqual((await full[b].result).ids, fx.generated_ids[b].slice(T, ctx));
  }
  // fewer shared steps than the requests' tokens: they ran side by side
  const tokens = expected.reduce((a, e) => a + e.length, 0);
  assert.ok(batcher.steps < tokens, `${batcher.steps} steps for ${tokens} tokens`);
  await batcher.close();
});

Deno.test("Batcher: logprobs are PyTorch's log-softmax of the last position, top 5 in order", async () => {
  using model = await loadTiny();
  const ref = f32File("tiny_book.logits.f32");
  const batcher = new Batcher(model, { maxBatch: 4 });
  for (let b = 0; b < 2; b++) {
    const reqs = [1, 4, 9].map((t) => ({
      t,
      r: batcher.add(fx.input_ids[b].slice(0, t), { maxNewTokens: 1, logprobs: true }),
    }));
    for (const { t, r } of reqs) {
      const res = await r.result;
      const row = Array.from(ref.subarray((b * T + t - 1) * V, (b * T + t) * V));
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
      const order = row.map((v, i) => [v, i]).sort((x, y) => y[0] - x[0] || x[1] - y[1]).slice(0, 5);
      const lp = res.logprobs![0];
      assert.equal(res.ids[0], order[0][1], "greedy choice is the top one");
      assert.ok(Math.abs(lp.logprob - (row[res.ids[0]] - lse)) < 1e-4, `logprob ${lp.logprob}`);
      assert.deepEqual(lp.top.map((x) => x.id), order.map((o) => o[1]));
      lp.top.forEach((x, k) => assert.ok(Math.abs(x.logprob - (order[k][0] - lse)) < 1e-4));
    }
  }
  await batcher.close();
});

Deno.test("Batcher: an end token stops a request, a cancel frees its slot, a full queue is refused", async () => {
  using model = await loadTiny();
  const prompt = fx.input_ids[0];
  const greedy = await alone(model, prompt, { maxNewTokens: 5 });
  const batcher = new Batcher(model, { maxBatch: 1, maxQueue: 1 });
  const eos = batcher.add(prompt, { maxNewTokens: 5, eosId: greedy[2] });
  const waiting = batcher.add(prompt, { maxNewTokens: 5 });
  assert.throws(() => batcher.add(prompt, { maxNewTokens: 5 }), BatchQueueFullError);
  const r = await eos.result;
  assert.deepEqual(r.ids, greedy.slice(0, greedy.indexOf(greedy[2])));
  assert.equal(r.finishReason, "stop");
  assert.deepEqual((await waiting.result).ids, greedy);
  // a request cancelled after its first chunk ends early, and the next one gets the slot
  const ctl = new AbortController();
  const long = batcher.add(prompt, { maxNewTokens: 7, signal: ctl.signal });
  const next = batcher.add(prompt, { maxNewTokens: 3 });
  const seen: number[] = [];
  for await (const c of long) {
    seen.push(...c.ids);
    ctl.abort();
  }
  const lr = await long.result;
  assert.equal(lr.finishReason, "cancelled");
  assert.ok(lr.ids.length < 7 && lr.ids.length >= 1);
  assert.deepEqual(lr.ids, greedy.slice(0, lr.ids.length));
  assert.deepEqual((await next.result).ids, greedy.slice(0, 3));
  await batcher.close();
  assert.throws(() => batcher.add(prompt, { maxNewTokens: 1 }), /closed/);
});

Deno.test("Batcher: bad requests are refused with the value and what to do", async () => {
  using model = await loadTiny();
  const batcher = new Batcher(model);
  const ctx = model.config.context_length;
  assert.throws(() => batcher.add([], { maxNewTokens: 1 }), /0 tokens/);
  assert.throws(() => batcher.add([1, V], { maxNewTokens: 1 }), /token id '97' at 1 is outside \[0, 97\)/);
  assert.throws(() => batcher.add([1, 2], { maxNewTokens: ctx - 1 }), /over the context of 16 tokens/);
  assert.throws(() => batcher.add([1], { maxNewTokens: 0 }), /maxNewTokens '0'/);
  assert.throws(() => batcher.add([1], { maxNewTokens: 1, topK: 3 }), /topK has no effect in greedy/);
  assert.throws(() => batcher.add([1], { maxNewTokens: 1, temprature: 1 } as BatchRequestOptions), /unknown option/);
  assert.throws(() => new Batcher(model, { maxBatch: 65 }), /maxBatch '65'/);
  await batcher.close();
});

Deno.test("generate() with rows of different lengths: each row equals generate() on it alone", async () => {
  using model = await loadTiny();
  const rows = [fx.input_ids[0].slice(0, 3), fx.input_ids[1], fx.input_ids[0].slice(0, 6)];
  for (const o of [{ maxNewTokens: 5 }, { maxNewTokens: 6, temperature: 0.8, seed: 9, topK: 30 }]) {
    const got = await generate(model, rows, o);
    for (let i = 0; i < rows.length; i++) {
      // row i of a ragged batch draws as row i of an equal-length one
      const alone = await generate(model, Array.from({ length: i + 1 }, () => rows[i]), o);
      assert.deepEqual(got[i], alone[i], `row ${i}`);
    }
  }
  await assert.rejects(
    generate(model, rows, { maxNewTokens: 8 }),
    /prompt's 9 tokens plus maxNewTokens 8 are over the context of 16 tokens; that is the longest row/,
  );
});

Deno.test("prompt cache: a ragged batch reusing earlier prompts' keys and values gives a cold batcher's ids, samples and logprobs bit for bit", async () => {
  using model = await GPTModel.create(SMALL, { seed: 9 });
  const seq = (n: number, k: number) => Array.from({ length: n }, (_, i) => (i * 7919 + k * 104729) % 50257);
  const primes = [seq(20, 1), seq(9, 2), seq(30, 3)];
  const warm = new Batcher(model, { maxBatch: 4 });
  const primed = await Promise.all(primes.map((p) => warm.add(p, { maxNewTokens: 5 }).result));
  // a chat's next turn (the prime, its answer, more), a longer start, the same prompt, a shorter one, a stranger
  const prompts = [
    [...primes[0], ...primed[0].ids, 11, 12, 13],
    [...primes[1], ...seq(6, 4)],
    primes[2],
    primes[2].slice(0, 12),
    seq(15, 5),
  ];
  const options = (i: number) =>
    i % 2 === 0
      ? { maxNewTokens: 7, logprobs: true }
      : { maxNewTokens: 7, temperature: 0.9, topK: 50, seed: 100 + i, logprobs: true };
  const warmReqs = prompts.map((p, i) => warm.add(p, options(i)));
  const got = await Promise.all(warmReqs.map((r) => r.result));
  await warm.close();
  const cold = new Batcher(model, { maxBatch: 4, promptCache: false });
  const coldReqs = prompts.map((p, i) => cold.add(p, options(i)));
  const want = await Promise.all(coldReqs.map((r) => r.result));
  await cold.close();
  assert.deepEqual(got, want);
  assert.ok(warmReqs[0].cachedTokens >= primes[0].length, `${warmReqs[0].cachedTokens} cached of the chat turn`);
  assert.equal(warmReqs[2].cachedTokens, primes[2].length - 1, "a repeated prompt computes only its last token");
  assert.ok(warmReqs.reduce((a, r) => a + r.cachedTokens, 0) > 40);
  assert.deepEqual(coldReqs.map((r) => r.cachedTokens), [0, 0, 0, 0, 0]);
});

Deno.test("greedy decoding in the batcher screens the head (long requests) and gives generate()'s ids, f32, f16 and q8", async () => {
  const seq = (n: number, k: number) => Array.from({ length: n }, (_, i) => (i * 7919 + k * 104729) % 50257);
  for (const dtype of ["f32", "f16", "q8"] as const) {
    using model = await GPTModel.create(SMALL, { seed: 4, dtype });
    const prompts = [seq(5, 1), seq(11, 2), seq(3, 3)];
    const b = new Batcher(model, { promptCache: false });
    const got = await Promise.all(prompts.map((p) => b.add(p, { maxNewTokens: 40 }).result));
    await b.close();
    for (const [i, p] of prompts.entries()) {
      assert.deepEqual(
        got[i].ids,
        (await generate(model, [p], { maxNewTokens: 40 }))[0].slice(p.length),
        `${dtype} ${i}`,
      );
    }
  }
});
