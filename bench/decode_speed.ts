/**
 * Decode speed with the key/value cache at several lengths: GPT-2 124M, batch 1, greedy,
 * 4-token prompt; median of 3 runs each.
 *
 *   deno run -A bench/decode_speed.ts
 */
import { generate, GPT_CONFIG_124M, GPTModel } from "../mod.ts";

const prompt = [[15496, 11, 314, 716]];
for (const dtype of ["f32", "f16"] as const) {
  using model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123, dtype });
  await generate(model, prompt, { maxNewTokens: 8 });
  for (const n of [128, 512]) {
    const ts: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      await generate(model, prompt, { maxNewTokens: n });
      ts.push(performance.now() - t);
    }
    ts.sort((a, b) => a - b);
    console.log(
      `${model.adapter} · ${dtype} · ${n} new tokens: ${(n / ts[1] * 1000).toFixed(1)} tokens/s (${
        ts[1].toFixed(0)
      } ms)`,
    );
  }
}
