/**
 * The screened greedy head against the full head and argmax, in one process on one model:
 * GPT-2 124M (seed 123), batch 1, 4-token prompt, decoding with the key/value cache, timed in
 * alternating pairs (`GPT_WEBGPU_HEAD_SCREEN=1` against `=0`). Prints both speeds, the median
 * ratio of the pairs, the time it took to build the 8-bit copy (a one-token call with it, less one
 * without) and whether the ids agree.
 *
 *   deno run -A bench/head_screen_ab.ts [f32|f16] [NEW_TOKENS] [PAIRS]
 */
import { generate, GPT_CONFIG_124M, GPTModel } from "../mod.ts";

const dtype = (Deno.args[0] ?? "f32") as "f32" | "f16";
const n = Number(Deno.args[1] ?? 128);
const pairs = Number(Deno.args[2] ?? 4);
const prompt = [[15496, 11, 314, 716]];

using model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123, dtype });

async function run(screen: boolean, tokens = n): Promise<{ ms: number; ids: string }> {
  Deno.env.set("GPT_WEBGPU_HEAD_SCREEN", screen ? "1" : "0");
  const t = performance.now();
  const out = await generate(model, prompt, { maxNewTokens: tokens });
  return { ms: performance.now() - t, ids: out[0].join(",") };
}

await run(false, 1); // compiles the step's kernels
const one = await run(false, 1);
const first = await run(true, 1); // builds the copy, then one step
let same = true;
const full: number[] = [];
const screened: number[] = [];
const ratios: number[] = [];
for (let i = 0; i < pairs; i++) {
  const order = i % 2 ? [true, false] : [false, true];
  const r: Record<string, { ms: number; ids: string }> = {};
  for (const s of order) r[String(s)] = await run(s);
  same &&= r.true.ids === r.false.ids;
  full.push(r.false.ms);
  screened.push(r.true.ms);
  ratios.push(r.false.ms / r.true.ms);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const rate = (ms: number) => (n / ms * 1000).toFixed(2);
console.log(`# ${model.adapter} · ${dtype} · ${n} new tokens · ${pairs} pairs`);
console.log(
  `full head ${rate(median(full))} tokens/s, screened ${rate(median(screened))} tokens/s, ` +
    `median ratio of pairs ${median(ratios).toFixed(2)}x; building the 8-bit copy took about ` +
    `${(first.ms - one.ms).toFixed(0)} ms; ids ${same ? "identical" : "DIFFER"}`,
);
