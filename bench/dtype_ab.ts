/**
 * Decoding speed of two weight types side by side in one process: GPT-2 124M (seed 123), batch
 * 1, greedy, a 4-token prompt, N new tokens with the key/value cache, the two models timed in
 * alternating order for ROUNDS rounds. Prints each one's median and range and the median of the
 * per-round ratios (A's tokens/s over B's).
 *
 * BACKEND_JSON sets backend choices for both, e.g. the command line's whole steps per submission.
 *
 *   deno run -A bench/dtype_ab.ts [A] [B] [N] [ROUNDS] [BACKEND_JSON]
 *   deno run -A bench/dtype_ab.ts q8 f16 128 8
 *   deno run -A bench/dtype_ab.ts q8 f16 128 6 '{"submitSteps":32,"submitBlocks":0}'
 */
import { type BackendOptions, generate, GPT_CONFIG_124M, GPTModel, type WeightDType } from "../mod.ts";

const a = (Deno.args[0] ?? "q8") as WeightDType;
const b = (Deno.args[1] ?? "f16") as WeightDType;
const n = Number(Deno.args[2] ?? 128);
const rounds = Number(Deno.args[3] ?? 8);
const backend = JSON.parse(Deno.args[4] ?? "{}") as BackendOptions;
const prompt = [[15496, 11, 314, 716]];

using ma = await GPTModel.create(GPT_CONFIG_124M, { seed: 123, dtype: a, backend });
using mb = await GPTModel.create(GPT_CONFIG_124M, { seed: 123, dtype: b, backend });
for (const m of [ma, mb]) await generate(m, prompt, { maxNewTokens: 40 }); // compile, build any screen

const rate: Record<string, number[]> = { [a]: [], [b]: [] };
const ratios: number[] = [];
for (let r = 0; r < rounds; r++) {
  const order = r % 2 ? [mb, ma] : [ma, mb];
  const got: Record<string, number> = {};
  for (const m of order) {
    const t = performance.now();
    await generate(m, prompt, { maxNewTokens: n });
    got[m.dtype] = n / ((performance.now() - t) / 1000);
    rate[m.dtype].push(got[m.dtype]);
  }
  ratios.push(got[a] / got[b]);
}
const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const range = (xs: number[]) => `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`;
console.log(
  `# ${
    new Date().toISOString().slice(0, 10)
  } · ${ma.adapter} · GPT-2 124M seed 123 · ${n} new tokens · ${rounds} rounds · backend ${JSON.stringify(backend)}`,
);
for (const d of [a, b]) console.log(`${d}: median ${med(rate[d]).toFixed(2)} tokens/s (range ${range(rate[d])})`);
console.log(`${a} / ${b}: median ${med(ratios).toFixed(2)}x (range ${range(ratios)})`);
