/**
 * What 16-bit and 8-bit weights cost in quality, against float32, on a text: the mean KL
 * divergence of each one's next-token distributions from float32's, the top-1 agreement, and the
 * perplexity of each, over every position of the text (`compareModels`, `perplexity`).
 *
 *   deno run -A bench/quality.ts [FILE] [--weights PATH | --model NAME]
 *
 * Default: the seed-123 untrained GPT-2 124M and bench/data/paragraph.txt.
 */
import { parseArgs } from "node:util";
import { compareModels, encode, GPT_CONFIG_124M, GPTModel, perplexity, type WeightDType } from "../mod.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { weights: { type: "string" }, model: { type: "string" } },
});
const file = positionals[0] ?? new URL("./data/paragraph.txt", import.meta.url).pathname;
const ids = encode(await Deno.readTextFile(file));
const load = (dtype: WeightDType) =>
  values.model
    ? GPTModel.fromPretrained(values.model, { dtype })
    : values.weights
    ? GPTModel.load(values.weights, { dtype })
    : GPTModel.create(GPT_CONFIG_124M, { seed: 123, dtype });

using f32 = await load("f32");
const base = await perplexity(f32, ids);
const what = values.model ?? values.weights ?? "GPT-2 124M, seed 123 (untrained)";
console.log(`# ${new Date().toISOString().slice(0, 10)} · ${f32.adapter} · ${what} · ${file} (${ids.length} tokens)`);
console.log("| weights | mean KL from f32 (nats) | top-1 agreement | perplexity | change |");
console.log("| --- | --- | --- | --- | --- |");
console.log(`| f32 | 0 | 100% | ${base.perplexity.toFixed(3)} | |`);
for (const dtype of ["f16", "q8"] as const) {
  using m = await load(dtype);
  const c = await compareModels(f32, m, ids);
  const p = await perplexity(m, ids);
  const change = (100 * (p.perplexity / base.perplexity - 1)).toFixed(3);
  console.log(
    `| ${dtype} | ${c.meanKl.toExponential(2)} | ${(100 * c.top1).toFixed(2)}% (${
      Math.round(c.top1 * c.tokens)
    }/${c.tokens}) | ${p.perplexity.toFixed(3)} | ${change}% |`,
  );
}
