// The screened greedy choice (8-bit estimates with error bounds, exact logits for the candidates)
// against the full head and argmax and the CPU reference: the same ids, ties included.
import assert from "node:assert/strict";
import { type GPTConfig, validateConfig } from "../src/config.ts";
import { GPTModel } from "../src/model.ts";
import { generate, generateTextSimple } from "../src/generate.ts";
import { generateRef, type ParamMap } from "../src/reference.ts";
import { TorchGenerator } from "../src/torch_random.ts";
import { randomIds, randomParams, tensorsOf } from "./_helpers.ts";

const CFG: GPTConfig = {
  vocab_size: 601, // three vocabulary chunks of at most 256 rows below, the last one short
  context_length: 10,
  emb_dim: 24,
  n_heads: 2,
  n_layers: 2,
  drop_rate: 0.1,
  qkv_bias: true,
};

/** Runs `fn` with GPT_WEBGPU_HEAD_SCREEN set to `value` (or unset), then restores it. */
async function withScreen<T>(value: "0" | "1" | undefined, fn: () => Promise<T>): Promise<T> {
  const old = Deno.env.get("GPT_WEBGPU_HEAD_SCREEN");
  if (value === undefined) Deno.env.delete("GPT_WEBGPU_HEAD_SCREEN");
  else Deno.env.set("GPT_WEBGPU_HEAD_SCREEN", value);
  try {
    return await fn();
  } finally {
    if (old === undefined) Deno.env.delete("GPT_WEBGPU_HEAD_SCREEN");
    else Deno.env.set("GPT_WEBGPU_HEAD_SCREEN", old);
  }
}

async function modelOf(p: ParamMap, dtype: "f32" | "f16", cfg = CFG): Promise<GPTModel> {
  return await GPTModel.fromTensors(cfg, tensorsOf(cfg, p), { dtype, maxBindingBytes: 256 * 24 * 4 }, false);
}

/** Both generation functions, screened and not, on the same batches: all four must agree. */
async function assertSameIds(model: GPTModel, batches: [number[][], number, number][], what: string) {
  for (const [ids, n, ctx] of batches) {
    const full = await withScreen("0", () => generate(model, ids, { maxNewTokens: n, contextSize: ctx }));
    const screened = await withScreen("1", () => generate(model, ids, { maxNewTokens: n, contextSize: ctx }));
    const simple = await withScreen("1", () => generateTextSimple(model, ids, n, ctx));
    const label = `${what} B=${ids.length} T=${ids[0].length} new=${n} ctx=${ctx}`;
    assert.deepEqual(screened, full, `${label}: screened generate()`);
    assert.deepEqual(simple, full, `${label}: screened generateTextSimple()`);
  }
}

Deno.test("the screened greedy head gives the full head's ids and the CPU reference's, f32 and f16, seeds, batches, past the context", async () => {
  const g = new TorchGenerator(8);
  for (const seed of [1, 2, 3]) {
    const p = randomParams(CFG, seed);
    const cfg = validateConfig(CFG);
    for (const dtype of ["f32", "f16"] as const) {
      using model = await modelOf(p, dtype);
      const batches: [number[][], number, number][] = [
        [randomIds(g, 1, 1, cfg.vocab_size), 24, 10],
        [randomIds(g, 3, 4, cfg.vocab_size), 12, 10],
        [randomIds(g, 2, 3, cfg.vocab_size), 9, 5],
      ];
      await assertSameIds(model, batches, `seed ${seed} ${dtype}`);
      if (dtype === "f32") {
        const [ids, n, ctx] = batches[1];
        const out = await withScreen("1", () => generate(model, ids, { maxNewTokens: n, contextSize: ctx }));
        ids.forEach((row, b) => assert.deepEqual(out[b], generateRef(cfg, p, row, n, ctx), `seed ${seed} row ${b}`));
      }
    }
  }
});

Deno.test("the screened greedy head breaks exact ties like torch.argmax (lowest id), across vocabulary chunks", async () => {
  const cfg = validateConfig(CFG);
  const C = cfg.emb_dim;
  const p = randomParams(CFG, 4);
  const g = new TorchGenerator(9);
  const v = new Float32Array(C);
  g.uniform(v, -1, 1);
  // rows 7, 300 and 600 (three chunks) hold v, rows 8 and 301 hold -v, every other row is 0: each
  // step's logits tie three ways (x.v > 0: id 7), two ways (x.v < 0: id 8) or everywhere (id 0)
  const head = new Float32Array(cfg.vocab_size * C);
  for (const r of [7, 300, 600]) head.set(v, r * C);
  for (const r of [8, 301]) head.set(v.map((x) => -x), r * C);
  p.set("out_head.weight", head);
  for (const dtype of ["f32", "f16"] as const) {
    using model = await modelOf(p, dtype);
    const ids = randomIds(g, 4, 3, cfg.vocab_size);
    await assertSameIds(model, [[ids, 12, 10]], `ties ${dtype}`);
    const out = await withScreen("1", () => generate(model, ids, { maxNewTokens: 12, contextSize: 10 }));
    const chosen = new Set(out.flatMap((row) => row.slice(3)));
    assert.ok([...chosen].every((id) => id === 7 || id === 8), `only the lowest tied ids are chosen: ${[...chosen]}`);
    if (dtype === "f32") {
      ids.forEach((row, b) => assert.deepEqual(out[b], generateRef(cfg, p, row, 12, 10), `ties row ${b}`));
    }
  }
  // a NaN row: its logit is NaN, which the argmax skips, and so does the screened choice
  const nan = new Float32Array(cfg.vocab_size * C);
  g.uniform(nan, -1, 1);
  nan.fill(NaN, 40 * C, 41 * C);
  p.set("out_head.weight", nan);
  for (const dtype of ["f32", "f16"] as const) {
    using model = await modelOf(p, dtype);
    await assertSameIds(model, [[randomIds(g, 2, 3, cfg.vocab_size), 6, 10]], `NaN row ${dtype}`);
  }
  // an all-zero head: every logit is 0, so every choice is id 0
  p.set("out_head.weight", new Float32Array(cfg.vocab_size * C));
  using zero = await modelOf(p, "f32");
  const out = await withScreen("1", () => generate(zero, [[5, 6]], { maxNewTokens: 4 }));
  assert.deepEqual(out, [[5, 6, 0, 0, 0, 0]]);
});

Deno.test("the screened greedy head falls back to the full head when too many ids are candidates", async () => {
  const cfg = validateConfig(CFG);
  const C = cfg.emb_dim;
  const p = randomParams(CFG, 7);
  const g = new TorchGenerator(10);
  // every row is v plus differences far below the 8-bit copy's resolution: every id is a candidate
  const v = new Float32Array(C);
  g.uniform(v, -1, 1);
  const noise = new Float32Array(cfg.vocab_size * C);
  g.uniform(noise, -1e-4, 1e-4);
  p.set("out_head.weight", noise.map((e, i) => v[i % C] + e));
  for (const dtype of ["f32", "f16"] as const) {
    using model = await modelOf(p, dtype);
    const ids = randomIds(g, 2, 3, cfg.vocab_size);
    await assertSameIds(model, [[ids, 10, 10]], `fallback ${dtype}`);
    if (dtype === "f32") {
      const out = await withScreen("1", () => generate(model, ids, { maxNewTokens: 10, contextSize: 10 }));
      ids.forEach((row, b) => assert.deepEqual(out[b], generateRef(cfg, p, row, 10, 10), `fallback row ${b}`));
    }
    // by default, a call of 32 steps that all fall back turns screening off for the model
    if (model.adapter.includes("llvmpipe")) {
      const before = await withScreen(undefined, () => model.profileStep(1, 1, 3));
      assert.equal(before.count["head pick"], 1, "screening on before");
      const long = await withScreen(undefined, () => generate(model, ids, { maxNewTokens: 32, contextSize: 10 }));
      assert.deepEqual(long, await withScreen("0", () => generate(model, ids, { maxNewTokens: 32, contextSize: 10 })));
      const after = await withScreen(undefined, () => model.profileStep(1, 1, 3));
      assert.equal(after.count["head pick"], undefined, "screening off after");
      assert.equal(after.count["matmul head"], dtype === "f16" ? 2 : 3, "one product per vocabulary chunk");
    }
  }
});

Deno.test("the screened greedy head runs only where asked: CPU adapters, greedy, GPT_WEBGPU_HEAD_SCREEN", async () => {
  using model = await modelOf(randomParams(CFG, 6), "f32");
  if (model.adapter.includes("llvmpipe")) {
    // by default: not for a short call, then on from a call of 32 steps on (which keeps it: few candidates)
    await withScreen(undefined, () => generate(model, [[1, 2]], { maxNewTokens: 4 }));
    const short = await withScreen(undefined, () => model.profileStep(1, 1, 3));
    assert.equal(short.count["head pick"], 1, "profileStep screens when a long call would");
    await withScreen(undefined, () => generate(model, [[1, 2]], { maxNewTokens: 32, contextSize: 10 }));
    const long = await withScreen(undefined, () => model.profileStep(1, 1, 3));
    assert.equal(long.count["head pick"], 1, "still screening after a call of 32 steps");
  }
  const on = await withScreen("1", () => model.profileStep(1, 1, 3));
  const off = await withScreen("0", () => model.profileStep(1, 1, 3));
  assert.equal(off.count["head pick"], undefined);
  assert.equal(off.count["matmul head"], 3);
  if (model.adapter.includes("llvmpipe")) {
    assert.equal(on.count["head screen"], 3, "one screen per vocabulary chunk");
    assert.equal(on.count["head refine"], 3);
    assert.equal(on.count["head pick"], 1);
    assert.equal(on.count["matmul head"], undefined);
    assert.equal(on.count["matmul head (fallback)"], 3, "the full head, with zero workgroups unless needed");
  }
});

Deno.test("with the split argmax (GPT_WEBGPU_ARGMAX=split) the head is not screened and the ids stay the reference's", async () => {
  const p = randomParams(CFG, 8);
  Deno.env.set("GPT_WEBGPU_ARGMAX", "split");
  let model;
  try {
    model = await modelOf(p, "f32");
  } finally {
    Deno.env.delete("GPT_WEBGPU_ARGMAX");
  }
  using _ = model;
  const prof = await withScreen("1", () => model.profileStep(1, 1, 3));
  assert.equal(prof.count["head pick"], undefined, "no screening: its fallback has no place for the split argmax");
  assert.equal(prof.count["argmax"], 2, "the two argmax passes");
  const ids = randomIds(new TorchGenerator(9), 2, 3, CFG.vocab_size);
  const got = await withScreen("1", () => generate(model, ids, { maxNewTokens: 12, contextSize: 10 }));
  const cfg = validateConfig(CFG);
  for (let b = 0; b < 2; b++) assert.deepEqual(got[b], generateRef(cfg, p, ids[b], 12, 10), `row ${b}`);
});
