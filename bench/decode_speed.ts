/**
 * Decode speed with the key/value cache at several lengths: GPT-2 124M, batch 1, greedy,
 * 4-token prompt; median of 3 runs each. Also the process's CPU time per token (all threads:
 * JavaScript, WebGPU and the driver), which says whether encoding the steps or the GPU sets the
 * pace: CPU time near the wall time means the CPU side does.
 *
 *   deno run -A bench/decode_speed.ts [BACKEND_JSON]
 *   deno run -A bench/decode_speed.ts '{"attention":"parts"}'
 */
import process from "node:process";
import { type BackendOptions, generate, GPT_CONFIG_124M, GPTModel } from "../mod.ts";

const backend = JSON.parse(Deno.args[0] ?? "{}") as BackendOptions;
const prompt = [[15496, 11, 314, 716]];
for (const dtype of ["f32", "f16", "q8"] as const) {
  using model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123, dtype, backend });
  await generate(model, prompt, { maxNewTokens: 8 });
  for (const n of [128, 512]) {
    const runs: { wall: number; cpu: number }[] = [];
    for (let i = 0; i < 3; i++) {
      const c = process.cpuUsage();
      const t = performance.now();
      await generate(model, prompt, { maxNewTokens: n });
      const u = process.cpuUsage(c);
      runs.push({ wall: performance.now() - t, cpu: (u.user + u.system) / 1000 });
    }
    runs.sort((a, b) => a.wall - b.wall);
    const { wall, cpu } = runs[1];
    console.log(
      `${model.adapter} · ${dtype} · ${n} new tokens: ${(n / wall * 1000).toFixed(1)} tokens/s (${
        wall.toFixed(0)
      } ms; ` +
        `${(wall / n).toFixed(3)} ms wall and ${(cpu / n).toFixed(3)} ms CPU per token)`,
    );
  }
}
