/**
 * Per-kernel profile of one decode step (`timestamp-query`, or timed replays where the adapter
 * has none): GPT-2 124M, batch 1, one token at cache position POS.
 *
 *   deno run -A bench/profile.ts [f32|f16] [POS] [BACKEND_JSON] [--dawn]
 *
 * `--dawn` runs it on Dawn (`npm:webgpu`, Tint's compiled kernels) instead of Deno's wgpu.
 * For the matrix kernels it prints the weight bytes they read and the rate: a decode step reads
 * every weight once, so GB/s against the machine's memory bandwidth says how far from its limit
 * each kernel is. On CPU adapters the greedy choice is screened ("head screen" reads the head's
 * 8-bit copy, "head refine" only the candidates' weights); `'{"headScreen":"never"}'` profiles the
 * full head instead.
 */
import { type BackendOptions, GPT_CONFIG_124M, GPTModel } from "../mod.ts";
import { profileStep } from "../src/model/_profile.ts";
import { create } from "webgpu";

const args = Deno.args.filter((a) => a !== "--dawn");
const gpu = Deno.args.includes("--dawn") ? create([]) as GPU : undefined;
const dtype = (args[0] ?? "f32") as "f32" | "f16" | "q8";
const pos = Number(args[1] ?? 64);
const backend = JSON.parse(args[2] ?? "{}") as BackendOptions;
using model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123, dtype, backend, gpu });
const { emb_dim: C, vocab_size: V, n_layers: L } = model.config;
// bytes per weight: 8-bit weights carry a float32 scale per 32
const bpe = { f32: 4, f16: 2, q8: 1.125 }[dtype as string] ?? 4;
const weightBytes: Record<string, number> = {
  "matmul qkv": L * C * 3 * C * bpe,
  "matmul out_proj+residual": L * C * C * bpe,
  "matmul fc+gelu": L * C * 4 * C * bpe,
  "matmul fc2+residual": L * 4 * C * C * bpe,
  "matmul head": C * V * bpe,
  "head screen": C * V, // the 8-bit copy of the head (CPU adapters)
};
await profileStep(model, 1, 1, pos);
const runs: Awaited<ReturnType<typeof profileStep>>[] = [];
for (let i = 0; i < 5; i++) runs.push(await profileStep(model, 1, 1, pos));
const names = Object.keys(runs[0].kernels);
const med = (k: string) => {
  const xs = runs.map((r) => r.kernels[k]).sort((a, b) => a - b);
  return xs[Math.floor(xs.length / 2)];
};
const total = names.reduce((s, k) => s + med(k), 0);
const allBytes = names.reduce((a, k) => a + (weightBytes[k] ?? 0), 0);
console.log(`# ${model.adapter} · ${dtype} · decode step at position ${pos} · ${runs[0].method} · median of 5`);
console.log("| kernel | dispatches | ms | share | weight MB | GB/s |");
console.log("| --- | --- | --- | --- | --- | --- |");
for (const k of names) {
  const ms = med(k);
  const b = weightBytes[k];
  console.log(
    `| ${k} | ${runs[0].count[k]} | ${ms.toFixed(3)} | ${(100 * ms / total).toFixed(1)}% | ${
      b ? (b / 1e6).toFixed(1) : ""
    } | ${b ? (b / ms / 1e6).toFixed(1) : ""} |`,
  );
}
console.log(
  `| total | ${Object.values(runs[0].count).reduce((a, b) => a + b, 0)} | ${total.toFixed(3)} | 100% | ${
    (allBytes / 1e6).toFixed(1)
  } | ${(allBytes / total / 1e6).toFixed(1)} |`,
);
console.log(
  `kernel time per token ${total.toFixed(2)} ms -> at most ${
    (1000 / total).toFixed(0)
  } tokens/s from the kernels alone`,
);
