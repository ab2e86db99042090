// GPTModel.loss() against PyTorch's cross_entropy (tests/testdata/loss.json, from loss_reference.py).
import assert from "node:assert/strict";
import { GPT_CONFIG_124M } from "../src/weights/config.ts";
import { GPTModel } from "../src/model/model.ts";
import { forwardRef, type ParamMap } from "../src/engine/reference.ts";
import { TorchGenerator } from "../src/weights/torch_random.ts";
import { fixture, randomIds, randomParams, tensorsOf, TESTDATA } from "./_helpers.ts";
import { validateConfig } from "../src/weights/config.ts";

interface LossCase {
  model: string;
  inputs: number[][];
  targets: number[][];
  loss: number;
  token_losses: number[];
}

const { cases } = fixture<{ cases: LossCase[] }>("loss.json");

Deno.test("GPTModel.loss() equals PyTorch's cross_entropy on the fixtures (tiny_book batches, the seed-123 124M model)", async () => {
  using tiny = await GPTModel.load(`${TESTDATA}tiny_book.safetensors`);
  using seed = await GPTModel.create(GPT_CONFIG_124M, { seed: 123 });
  for (const c of cases) {
    const model = c.model === "tiny_book" ? tiny : seed;
    const got = await model.loss(c.inputs, c.targets);
    const what = `${c.model} [${c.inputs.length}, ${c.inputs[0].length}]`;
    assert.ok(Math.abs(got - c.loss) <= 1e-5 * Math.abs(c.loss) + 1e-6, `${what}: ${got} vs PyTorch ${c.loss}`);
  }
});

/** The mean cross-entropy from the plain TypeScript forward pass, in float64. */
function lossRef(cfg: ReturnType<typeof validateConfig>, p: ParamMap, inputs: number[][], targets: number[][]): number {
  let sum = 0;
  let n = 0;
  inputs.forEach((row, b) => {
    const logits = forwardRef(cfg, p, row);
    const V = cfg.vocab_size;
    row.forEach((_, t) => {
      const x = logits.subarray(t * V, (t + 1) * V);
      let m = -Infinity;
      for (const v of x) m = Math.max(m, v);
      let s = 0;
      for (const v of x) s += Math.exp(v - m);
      sum += Math.log(s) + m - x[targets[b][t]];
      n++;
    });
  });
  return sum / n;
}

Deno.test("GPTModel.loss() matches the plain reference on odd shapes, across row groups, in f32 and f16", async () => {
  const cfg = validateConfig({
    vocab_size: 601,
    context_length: 70,
    emb_dim: 24,
    n_heads: 2,
    n_layers: 2,
    drop_rate: 0,
    qkv_bias: true,
  });
  const p = randomParams(cfg, 3);
  using model = await GPTModel.fromTensors(cfg, tensorsOf(cfg, p), { maxBindingBytes: 256 * 24 * 4 });
  const g = new TorchGenerator(4);
  for (const [B, T] of [[1, 1], [2, 9], [3, 70]]) {
    const ids = randomIds(g, B, T + 1, cfg.vocab_size);
    const inputs = ids.map((r) => r.slice(0, -1));
    const targets = ids.map((r) => r.slice(1));
    const got = await model.loss(inputs, targets);
    const want = lossRef(cfg, p, inputs, targets);
    assert.ok(Math.abs(got - want) < 1e-4 * Math.abs(want), `[${B}, ${T}]: ${got} vs ${want}`);
  }
  await assert.rejects(() => model.loss([[1, 2]], [[1]]), TypeError);
  await assert.rejects(() => model.loss([[1, 2]], [[1, 601]]), RangeError);
  await assert.rejects(() => model.loss([new Array(71).fill(1)], [new Array(71).fill(1)]), RangeError);
});

Deno.test("GPTModel.loss() and forward() split logits over more rows than one binding holds", async () => {
  // 2 x 350 rows of 50,257 logits: 141 MB, more than llvmpipe's 128 MiB binding
  const cfg = validateConfig({
    vocab_size: 50257,
    context_length: 350,
    emb_dim: 16,
    n_heads: 2,
    n_layers: 1,
    drop_rate: 0,
    qkv_bias: false,
  });
  const p = randomParams(cfg, 6);
  using model = await GPTModel.fromTensors(cfg, tensorsOf(cfg, p));
  const ids = randomIds(new TorchGenerator(7), 2, 351, cfg.vocab_size);
  const inputs = ids.map((r) => r.slice(0, -1));
  const targets = ids.map((r) => r.slice(1));
  const got = await model.loss(inputs, targets);
  const want = lossRef(cfg, p, inputs, targets);
  assert.ok(Math.abs(got - want) < 1e-4 * Math.abs(want), `${got} vs ${want}`);
  const logits = await model.forward(inputs);
  const last = forwardRef(cfg, p, inputs[1]).subarray(349 * cfg.vocab_size);
  const gotLast = logits.subarray((2 * 350 - 1) * cfg.vocab_size);
  for (let v = 0; v < cfg.vocab_size; v += 997) {
    assert.ok(Math.abs(gotLast[v] - last[v]) < 1e-4 + 1e-4 * Math.abs(last[v]), `logit ${v}`);
  }
});
