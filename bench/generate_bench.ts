// deno bench -A bench/ : time per call; tokens per second = new tokens / time.
// Napkin maths for GPT-2 124M (163M parameters with the untied head), batch 1:
// - a decode step reads every weight once: 652 MB in f32, 326 MB in f16, 183 MB in q8 (the head alone 154 / 77 /
//   43 MB); on a CPU
//   adapter, greedy calls of 32 steps or more read the head's 8-bit copy instead (39 MB) plus a few exact rows;
// - a step over T tokens costs about 2 * 85M * T FLOPs in the blocks plus 2 * 38.6M for the head row.
import { generate, generateTextSimple, GPT_CONFIG_124M, GPTModel } from "../mod.ts";

const prompt = [[15496, 11, 314, 716]];
const smallPrompt = [[1, 2, 3, 4]];
const small = {
  vocab_size: 1000,
  context_length: 64,
  emb_dim: 128,
  n_heads: 4,
  n_layers: 2,
  drop_rate: 0,
  qkv_bias: false,
};

const m32 = await GPTModel.create(GPT_CONFIG_124M, { seed: 123 });
const m16 = await GPTModel.create(GPT_CONFIG_124M, { seed: 123, dtype: "f16" });
const q8 = await GPTModel.create(GPT_CONFIG_124M, { seed: 123, dtype: "q8" });
const tiny = await GPTModel.create(small, { seed: 1 });
for (const m of [m32, m16, q8]) {
  await generateTextSimple(m, prompt, 6, 1024);
  await generate(m, prompt, { maxNewTokens: 2 });
}
await generateTextSimple(tiny, smallPrompt, 32, 64);

Deno.bench({
  name: "124M f32 generateTextSimple, seed example (6 new tokens)",
  group: "simple",
  baseline: true,
  n: 3,
  warmup: 1,
  async fn() {
    await generateTextSimple(m32, prompt, 6, 1024);
  },
});
Deno.bench({
  name: "124M f16 generateTextSimple, seed example (6 new tokens)",
  group: "simple",
  n: 3,
  warmup: 1,
  async fn() {
    await generateTextSimple(m16, prompt, 6, 1024);
  },
});
Deno.bench({
  name: "124M f32 generate with key/value cache (4-token prompt, 32 new tokens)",
  group: "decode",
  baseline: true,
  n: 3,
  warmup: 1,
  async fn() {
    await generate(m32, prompt, { maxNewTokens: 32 });
  },
});
Deno.bench({
  name: "124M f16 generate with key/value cache (4-token prompt, 32 new tokens)",
  group: "decode",
  n: 3,
  warmup: 1,
  async fn() {
    await generate(m16, prompt, { maxNewTokens: 32 });
  },
});
Deno.bench({
  name: "124M q8 generate with key/value cache (4-token prompt, 32 new tokens)",
  group: "decode",
  n: 3,
  warmup: 1,
  async fn() {
    await generate(q8, prompt, { maxNewTokens: 32 });
  },
});
Deno.bench({
  name: "small model (2 layers, emb 128) generateTextSimple (32 new tokens)",
  group: "small",
  n: 5,
  warmup: 1,
  async fn() {
    await generateTextSimple(tiny, smallPrompt, 32, 64);
  },
});

// free the GPU memory when the benchmarks are done
globalThis.addEventListener("unload", () => {
  for (const m of [m32, m16, q8, tiny]) m.destroy();
});
