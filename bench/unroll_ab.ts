/**
 * generateTextSimple on the seed example (6 new tokens) with the CPU matrix kernel's several-row
 * products written out as in one-row products (GPT_WEBGPU_MM_UNROLL=4) against the default
 * (walked in a loop), two models in one process, timed in alternating pairs; checks both give the
 * same ids. GPT-2 124M, seed 123.
 *
 *   deno run -A bench/unroll_ab.ts [f32|f16] [PAIRS]
 */
import { generateTextSimple, GPT_CONFIG_124M, GPTModel } from "../mod.ts";

const dtype = (Deno.args[0] ?? "f32") as "f32" | "f16";
const PAIRS = Number(Deno.args[1] ?? 10);
const prompt = [[15496, 11, 314, 716]];

/** A model whose matrix pipelines are all compiled (by a first call) with GPT_WEBGPU_MM_UNROLL as given. */
async function model(unroll: string | undefined): Promise<GPTModel> {
  if (unroll) Deno.env.set("GPT_WEBGPU_MM_UNROLL", unroll);
  else Deno.env.delete("GPT_WEBGPU_MM_UNROLL");
  const m = await GPTModel.create(GPT_CONFIG_124M, { seed: 123, dtype });
  await generateTextSimple(m, prompt, 6, 1024);
  return m;
}

const env = Deno.env.get("GPT_WEBGPU_MM_UNROLL");
using written = await model("4");
using walked = await model(undefined);
if (env) Deno.env.set("GPT_WEBGPU_MM_UNROLL", env);
else Deno.env.delete("GPT_WEBGPU_MM_UNROLL");
const times: Record<string, number[]> = { written: [], walked: [] };
const ids = new Set<string>();
for (let i = 0; i < PAIRS; i++) {
  const order: [string, GPTModel][] = [["written", written], ["walked", walked]];
  for (const [name, m] of i % 2 ? order.reverse() : order) {
    const t = performance.now();
    const out = await generateTextSimple(m, prompt, 6, 1024);
    times[name].push(performance.now() - t);
    ids.add(out[0].join(","));
  }
}
if (ids.size !== 1) throw new Error(`the two kernels gave different ids: ${[...ids].join(" / ")}`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const ratio = median(times.written.map((t, i) => t / times.walked[i]));
console.log(`# ${written.adapter} · ${dtype} · ${PAIRS} pairs · ids ${[...ids][0]}`);
console.log(
  `generateTextSimple tokens/s: written out ${(6000 / median(times.written)).toFixed(2)}, walked ${
    (6000 / median(times.walked)).toFixed(2)
  }; median ratio of pairs (time written / walked) ${ratio.toFixed(2)}`,
);
