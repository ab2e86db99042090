import { generate, GPT_CONFIG_124M, GPTModel } from "../../mod.ts";
const dtype = (Deno.args[0] ?? "f32") as "f32";
const model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123, dtype });
const prompt = [15496, 11, 314, 716];
for (const B of [1, 8, 1, 8, 16]) {
  const idx = Array.from({ length: B }, () => prompt);
  await generate(model, idx, { maxNewTokens: 2 });
  const t0 = performance.now();
  await generate(model, idx, { maxNewTokens: 24 });
  const ms = performance.now() - t0;
  console.log(dtype, "B", B, (ms / 24).toFixed(1), "ms/step", (B * 24 / ms * 1000).toFixed(1), "tok/s");
}
