// The screened greedy choice (8-bit estimates with error bounds, exact logits for the candidates)
// against the full head and argmax and the CPU reference: the same ids, ties included.
import assert from "node:assert/strict";
import { type GPTConfig, validateConfig } from "../src/weights/config.ts";
import { GPTModel } from "../src/model/model.ts";
import type { HeadScreenMode } from "../src/engine/backend.ts";
import { profileStep } from "../src/model/_profile.ts";
import { generate, generateTextSimple } from "../src/model/generate.ts";
import { generateRef, type ParamMap } from "../src/engine/reference.ts";
import { TorchGenerator } from "../src/weights/torch_random.ts";
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

/** The CPU kernels (the head screen's), on any adapter. */
const WIDE = { matmul: "wide", argmax: "serial" } as const;

async function modelOf(p: ParamMap, dtype: "f32" | "f16", headScreen: HeadScreenMode = "auto"): Promise<GPTModel> {
  return await GPTModel.fromTensors(CFG, tensorsOf(CFG, p), {
    dtype,
    maxBindingBytes: 256 * 24 * 4,
    backend: { ...WIDE, headScreen },
  });
}

/** The same weights twice: with the full head and argmax, and with every greedy call screened. */
interface Pair extends Disposable {
  full: GPTModel;
  screened: GPTModel;
}

async function pairOf(p: ParamMap, dtype: "f32" | "f16"): Promise<Pair> {
  const full = await modelOf(p, dtype, "never");
  const screened = await modelOf(p, dtype, "always");
  return {
    full,
    screened,
    [Symbol.dispose]() {
      full.destroy();
      screened.destroy();
    },
  };
}

/** Both generation functions, screened and not, on the same batches: all must agree. */
async function assertSameIds(pair: Pair, batches: [number[][], number, number][], what: string) {
  for (const [ids, n, ctx] of batches) {
    const full = await generate(pair.full, ids, { maxNewTokens: n, contextSize: ctx });
    const screened = await generate(pair.screened, ids, { maxNewTokens: n, contextSize: ctx });
    const simple = await generateTextSimple(pair.screened, ids, n, ctx);
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
      using pair = await pairOf(p, dtype);
      const batches: [number[][], number, number][] = [
        [randomIds(g, 1, 1, cfg.vocab_size), 24, 10],
        [randomIds(g, 3, 4, cfg.vocab_size), 12, 10],
        [randomIds(g, 2, 3, cfg.vocab_size), 9, 5],
      ];
      await assertSameIds(pair, batches, `seed ${seed} ${dtype}`);
      if (dtype === "f32") {
        const [ids, n, ctx] = batches[1];
        const out = await generate(pair.screened, ids, { maxNewTokens: n, contextSize: ctx });
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
    using pair = await pairOf(p, dtype);
    const ids = randomIds(g, 4, 3, cfg.vocab_size);
    await assertSameIds(pair, [[ids, 12, 10]], `ties ${dtype}`);
    const out = await generate(pair.screened, ids, { maxNewTokens: 12, contextSize: 10 });
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
    using pair = await pairOf(p, dtype);
    await assertSameIds(pair, [[randomIds(g, 2, 3, cfg.vocab_size), 6, 10]], `NaN row ${dtype}`);
  }
  // an all-zero head: every logit is 0, so every choice is id 0
  p.set("out_head.weight", new Float32Array(cfg.vocab_size * C));
  using zero = await modelOf(p, "f32", "always");
  const out = await generate(zero, [[5, 6]], { maxNewTokens: 4 });
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
    using pair = await pairOf(p, dtype);
    const ids = randomIds(g, 2, 3, cfg.vocab_size);
    await assertSameIds(pair, [[ids, 10, 10]], `fallback ${dtype}`);
    if (dtype === "f32") {
      const out = await generate(pair.screened, ids, { maxNewTokens: 10, contextSize: 10 });
      ids.forEach((row, b) => assert.deepEqual(out[b], generateRef(cfg, p, row, 10, 10), `fallback row ${b}`));
    }
    // "auto": a call of 32 steps that all fall back turns screening off for the model
    using auto = await modelOf(p, dtype, "auto");
    const before = await profileStep(auto, 1, 1, 3);
    assert.equal(before.count["head pick"], 1, "screening on before");
    const long = await generate(auto, ids, { maxNewTokens: 32, contextSize: 10 });
    assert.deepEqual(long, await generate(pair.full, ids, { maxNewTokens: 32, contextSize: 10 }));
    const after = await profileStep(auto, 1, 1, 3);
    assert.equal(after.count["head pick"], undefined, "screening off after");
    assert.equal(after.count["matmul head"], dtype === "f16" ? 2 : 3, "one product per vocabulary chunk");
  }
});

Deno.test("the screened greedy head runs only where the profile asks: greedy calls, by backend.headScreen", async () => {
  const p = randomParams(CFG, 6);
  using auto = await modelOf(p, "f32", "auto");
  // "auto": not for a short call, then on from a call of 32 steps on (which keeps it: few candidates)
  await generate(auto, [[1, 2]], { maxNewTokens: 4 });
  const short = await profileStep(auto, 1, 1, 3);
  assert.equal(short.count["head pick"], 1, "profileStep screens when a long call would");
  await generate(auto, [[1, 2]], { maxNewTokens: 32, contextSize: 10 });
  const long = await profileStep(auto, 1, 1, 3);
  assert.equal(long.count["head pick"], 1, "still screening after a call of 32 steps");
  using pair = await pairOf(p, "f32");
  const on = await profileStep(pair.screened, 1, 1, 3);
  const off = await profileStep(pair.full, 1, 1, 3);
  assert.equal(off.count["head pick"], undefined);
  assert.equal(off.count["matmul head"], 3);
  assert.equal(on.count["head screen"], 3, "one screen per vocabulary chunk");
  assert.equal(on.count["head refine"], 3);
  assert.equal(on.count["head pick"], 1);
  assert.equal(on.count["matmul head"], undefined);
  assert.equal(on.count["matmul head (fallback)"], 3, "the full head, with zero workgroups unless needed");
  // sampling never screens
  const sampled = await generate(pair.screened, [[1, 2]], { maxNewTokens: 8, temperature: 1, seed: 3 });
  assert.deepEqual(sampled, await generate(pair.full, [[1, 2]], { maxNewTokens: 8, temperature: 1, seed: 3 }));
});

Deno.test("the profile screens the head only with the wide kernel and the serial argmax, and says so", async () => {
  const p = randomParams(CFG, 8);
  await assert.rejects(
    () => GPTModel.fromTensors(CFG, tensorsOf(CFG, p), { backend: { ...WIDE, argmax: "split", headScreen: "always" } }),
    RangeError,
  );
  using model = await GPTModel.fromTensors(CFG, tensorsOf(CFG, p), {
    maxBindingBytes: 256 * 24 * 4,
    backend: { ...WIDE, argmax: "split" },
  });
  assert.equal(model.backend.headScreen, "never");
  const prof = await profileStep(model, 1, 1, 3);
  assert.equal(prof.count["head pick"], undefined, "no screening: its fallback has no place for the split argmax");
  assert.equal(prof.count["argmax"], 2, "the two argmax passes");
  const ids = randomIds(new TorchGenerator(9), 2, 3, CFG.vocab_size);
  const got = await generate(model, ids, { maxNewTokens: 12, contextSize: 10 });
  const cfg = validateConfig(CFG);
  for (let b = 0; b < 2; b++) assert.deepEqual(got[b], generateRef(cfg, p, ids[b], 12, 10), `row ${b}`);
});
