import { generate, GPT_CONFIG_124M, GPTModel } from "../../mod.ts";
import { Batcher } from "../../src/batcher.ts";
const model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123 });
const prompts = [[15496, 11, 314, 716], [464, 3290], [7454, 2402, 257, 640, 11, 612], [15496]];
const opts = [{ maxNewTokens: 6 }, { maxNewTokens: 9, temperature: 0.9, seed: 5 }, {
  maxNewTokens: 4,
  temperature: 1.2,
  topK: 20,
  seed: 9,
  row: 1,
}, { maxNewTokens: 7 }];
const alone = [];
for (let i = 0; i < 4; i++) {
  const { row, ...o } = opts[i] as any;
  const idx = Array.from({ length: (row ?? 0) + 1 }, () => prompts[i]);
  const out = await generate(model, idx, o);
  alone.push(out[row ?? 0].slice(prompts[i].length));
}
console.log("alone", JSON.stringify(alone));
const b = new Batcher(model, { maxBatch: 3 });
const t0 = performance.now();
const reqs = prompts.map((p, i) => b.add(p, { ...opts[i], logprobs: i === 0 }));
const res = await Promise.all(reqs.map((r) => r.result));
console.log(
  "batch",
  JSON.stringify(res.map((r) => r.ids)),
  res.map((r) => r.finishReason),
  (performance.now() - t0).toFixed(0),
  "ms",
  b.steps,
);
console.log(JSON.stringify(res[0].logprobs?.slice(0, 2)));
await b.close();
