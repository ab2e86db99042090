/**
 * Memory over a long training run: a small model (GPT-2's vocabulary, emb 64, 2 layers, context
 * 64) for STEPS optimizer steps over the test text, with an evaluation every 50 steps; the process's
 * resident memory and the JavaScript heap every 100 steps. Flat numbers mean nothing accumulates per
 * step (no buffer, staging buffer or promise left behind).
 *
 *   deno run -A bench/train_memory.ts [STEPS]     (default 1000)
 */
import { AdamW, backward, createDataloaderV1, evaluateModel, GPTModel } from "../mod.ts";

const STEPS = Number(Deno.args[0] ?? 1000);
const text = await Deno.readTextFile(new URL("../tests/testdata/train_text.txt", import.meta.url));
const cfg = {
  vocab_size: 50257,
  context_length: 64,
  emb_dim: 64,
  n_heads: 4,
  n_layers: 2,
  drop_rate: 0.1,
  qkv_bias: false,
};
using model = await GPTModel.create(cfg, { seed: 123, trainable: true });
const loader = createDataloaderV1(text, { batchSize: 2, maxLength: 64, stride: 16, generator: model.generator });
const opt = new AdamW(model, { lr: 1e-3, weightDecay: 0.1 });
const mb = (b: number) => (b / 2 ** 20).toFixed(1);
let step = 0;
const t0 = performance.now();
console.log(`${model.adapter}; ${loader.length} batches a pass`);
while (step < STEPS) {
  for (const [x, y] of loader) {
    opt.zeroGrad();
    const loss = await backward(model, x, y);
    opt.step();
    step++;
    if (step % 50 === 0) await evaluateModel(model, loader, loader, 1);
    if (step % 100 === 0) {
      const m = Deno.memoryUsage();
      console.log(
        `step ${step}: loss ${loss.toFixed(3)}, rss ${mb(m.rss)} MiB, heap ${mb(m.heapUsed)} MiB, ` +
          `${((performance.now() - t0) / step).toFixed(0)} ms a step`,
      );
    }
    if (step >= STEPS) break;
  }
}
