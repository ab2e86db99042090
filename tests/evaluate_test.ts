// perplexity() and compareModels(): windows over long texts, against the plain reference; the CLI command.
import assert from "node:assert/strict";
import { validateConfig } from "../src/weights/config.ts";
import { GPTModel } from "../src/model/model.ts";
import { compareModels, perplexity } from "../src/model/evaluate.ts";
import { forwardRef } from "../src/engine/reference.ts";
import { TorchGenerator } from "../src/weights/torch_random.ts";
import { main } from "../src/cli/cli.ts";
import { randomIds, randomParams, tensorsOf } from "./_helpers.ts";

const CFG = validateConfig({
  vocab_size: 101,
  context_length: 16,
  emb_dim: 32,
  n_heads: 4,
  n_layers: 2,
  drop_rate: 0,
  qkv_bias: true,
});

/** The negative log-likelihood of `target` under logits `x`, in float64. */
function nll(x: Float32Array, target: number): number {
  let m = -Infinity;
  for (const v of x) m = Math.max(m, v);
  let s = 0;
  for (const v of x) s += Math.exp(v - m);
  return Math.log(s) + m - x[target];
}

Deno.test("perplexity() of a text shorter than the context is exp(loss(ids[:-1], ids[1:]))", async () => {
  const p = randomParams(CFG, 2);
  using model = await GPTModel.fromTensors(CFG, tensorsOf(CFG, p));
  const ids = randomIds(new TorchGenerator(3), 1, 12, CFG.vocab_size)[0];
  const r = await perplexity(model, ids);
  const loss = await model.loss([ids.slice(0, -1)], [ids.slice(1)]);
  assert.equal(r.windows, 1);
  assert.equal(r.tokens, 11);
  assert.ok(Math.abs(r.perplexity - Math.exp(loss)) < 1e-9 * r.perplexity, `${r.perplexity} vs ${Math.exp(loss)}`);
  await assert.rejects(() => perplexity(model, [5]), RangeError);
  await assert.rejects(() => perplexity(model, ids, { stride: 0 }), RangeError);
  await assert.rejects(() => perplexity(model, ids, { stride: 17 }), RangeError);
});

Deno.test("perplexity() over many windows scores every token once, each with the windows' context (the plain reference)", async () => {
  const p = randomParams(CFG, 4);
  using model = await GPTModel.fromTensors(CFG, tensorsOf(CFG, p));
  const ids = randomIds(new TorchGenerator(5), 1, 61, CFG.vocab_size)[0];
  for (const stride of [16, 5, 1]) {
    // windows of 16 inputs every `stride` tokens; each scores the targets after the last one scored
    let sum = 0;
    let n = 0;
    let windows = 0;
    let scored = 0;
    for (let begin = 0;; begin += stride) {
      const end = Math.min(begin + 16, ids.length - 1);
      if (end > scored) {
        windows++;
        const logits = forwardRef(CFG, p, ids.slice(begin, end));
        for (let j = Math.max(scored + 1, begin + 1); j <= end; j++) {
          const pos = j - 1 - begin;
          sum += nll(logits.subarray(pos * CFG.vocab_size, (pos + 1) * CFG.vocab_size), ids[j]);
          n++;
        }
        scored = end;
      }
      if (end === ids.length - 1) break;
    }
    const progress: number[] = [];
    const r = await perplexity(model, ids, { stride, onProgress: (d) => progress.push(d) });
    assert.equal(r.tokens, 60, "every token but the first");
    assert.equal(n, 60);
    assert.equal(r.windows, windows);
    assert.deepEqual(progress, Array.from({ length: windows }, (_, i) => i + 1));
    assert.ok(Math.abs(r.loss - sum / n) < 2e-5 * (sum / n), `stride ${stride}: ${r.loss} vs ${sum / n}`);
  }
  const stop = new AbortController();
  stop.abort();
  await assert.rejects(() => perplexity(model, ids, { stride: 4, signal: stop.signal }));
});

Deno.test("compareModels(): the same weights agree exactly; f16 and q8 diverge a little from f32", async () => {
  const p = randomParams(CFG, 6);
  using a = await GPTModel.fromTensors(CFG, tensorsOf(CFG, p));
  using b = await GPTModel.fromTensors(CFG, tensorsOf(CFG, p));
  const ids = randomIds(new TorchGenerator(7), 1, 40, CFG.vocab_size)[0];
  const same = await compareModels(a, b, ids, { stride: 8 });
  assert.equal(same.meanKl, 0);
  assert.equal(same.top1, 1);
  assert.equal(same.tokens, 39);
  for (const dtype of ["f16", "q8"] as const) {
    using c = await GPTModel.fromTensors(CFG, tensorsOf(CFG, p), { dtype });
    const d = await compareModels(a, c, ids, { stride: 8 });
    assert.ok(d.meanKl > 0 && d.meanKl < (dtype === "f16" ? 1e-6 : 1e-3), `${dtype}: KL ${d.meanKl}`);
    assert.ok(d.top1 > 0.8 && d.top1 <= 1, `${dtype}: top-1 ${d.top1}`);
  }
  await assert.rejects(() => compareModels(a, a, ids), RangeError);
});

Deno.test("deno run mod.ts perplexity FILE: one line, or --json with perplexity, tokens and windows; usage errors exit 2", async () => {
  const file = await Deno.makeTempFile({ suffix: ".txt" });
  try {
    await Deno.writeTextFile(file, "Every effort moves you forward, and every step counts. ".repeat(3));
    const out: string[] = [];
    const err: string[] = [];
    // the seed-123 124M model (GPT-2's vocabulary)
    const code = await main(
      ["perplexity", "--json", "--quiet", "--stride", "512", file],
      (s) => out.push(s),
      (s) => err.push(s),
    );
    assert.equal(code, 0, err.join("\n"));
    const r = JSON.parse(out[0]);
    assert.equal(r.windows, 1);
    assert.ok(r.tokens > 30 && r.perplexity > 1, JSON.stringify(r));
    assert.equal(await main(["perplexity"], () => {}, () => {}), 2);
    assert.equal(await main(["perplexity", "--stride", "0", file], () => {}, () => {}), 2);
    assert.equal(await main(["perplexity", "--dtype", "f8", file], () => {}, () => {}), 2);
    const missing: string[] = [];
    assert.equal(await main(["perplexity", "/nonexistent.txt"], () => {}, (s) => missing.push(s)), 1);
    assert.equal(missing.length, 1);
  } finally {
    await Deno.remove(file);
  }
});
