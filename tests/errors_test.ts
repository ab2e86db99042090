// Bad input ends in one clear error, thrown before any GPU work.
import assert from "node:assert/strict";
import { GPTModel } from "../src/model/model.ts";
import { generate, generateTextSimple } from "../src/model/generate.ts";
import { validateConfig } from "../src/weights/config.ts";
import { requestGpu, WebGPUUnavailableError } from "../src/gpu/device.ts";
import { randomParams, tensorsOf } from "./_helpers.ts";

const CFG = { vocab_size: 50, context_length: 8, emb_dim: 16, n_heads: 2, n_layers: 1, drop_rate: 0, qkv_bias: false };

async function tiny() {
  return await GPTModel.fromTensors(CFG, tensorsOf(CFG, randomParams(CFG, 1)));
}

Deno.test("generateTextSimple() rejects an empty prompt, a ragged batch and ids outside the vocabulary", async () => {
  using m = await tiny();
  await assert.rejects(generateTextSimple(m, [[]], 1, 8), {
    name: "RangeError",
    message: "Cannot generate: prompt has 0 tokens",
  });
  await assert.rejects(generateTextSimple(m, [], 1, 8), TypeError);
  await assert.rejects(generateTextSimple(m, [[1, 2], [3]], 1, 8), /row 1 has 1 tokens but row 0 has 2/);
  await assert.rejects(generateTextSimple(m, [[1, 50]], 1, 8), /token id '50' at \[0\]\[1\] is outside \[0, 50\)/);
  await assert.rejects(generateTextSimple(m, [[1, -1]], 1, 8), /token id '-1'/);
  await assert.rejects(generateTextSimple(m, [[1, 2.5]], 1, 8), /token id '2.5'/);
});

Deno.test("generateTextSimple() and generate() reject bad counts and context sizes", async () => {
  using m = await tiny();
  await assert.rejects(generateTextSimple(m, [[1]], -1, 8), {
    name: "RangeError",
    message: /maxNewTokens '-1' must be a non-negative integer/,
  });
  await assert.rejects(generateTextSimple(m, [[1]], 1.5, 8), /maxNewTokens '1.5'/);
  await assert.rejects(generateTextSimple(m, [[1]], 1, 0), /contextSize '0' must be a positive integer/);
  await assert.rejects(generateTextSimple(m, [[1]], 20, 100), /more than the model's context_length 8/);
  await assert.rejects(generate(m, [[1]], { maxNewTokens: -2 }), /maxNewTokens '-2'/);
  await assert.rejects(generate(m, [[1]], { maxNewTokens: 2, contextSize: 0 }), /contextSize '0'/);
  assert.deepEqual(await generateTextSimple(m, [[1, 2]], 0, 8), [[1, 2]]);
});

Deno.test("GPTModel.forward() rejects more tokens than the context", async () => {
  using m = await tiny();
  await assert.rejects(m.forward([[1, 2, 3, 4, 5, 6, 7, 8, 9]]), /9 tokens exceed the context length 8/);
});

Deno.test("validateConfig() rejects emb_dim not divisible by n_heads and bad sizes", async () => {
  assert.throws(() => validateConfig({ ...CFG, n_heads: 3 }), {
    name: "RangeError",
    message: /emb_dim 16 is not divisible by n_heads 3/,
  });
  assert.throws(() => validateConfig({ ...CFG, n_layers: 0 }), /'n_layers' is 0/);
  assert.throws(() => validateConfig({ ...CFG, emb_dim: 18, n_heads: 3 }), /emb_dim 18 is not a multiple of 4/);
  await assert.rejects(GPTModel.create({ ...CFG, n_heads: 5 }), /not divisible/);
  await assert.rejects(GPTModel.create(CFG, { dtype: "f64" as "f32" }), /dtype 'f64'/);
});

Deno.test("a destroyed model throws a clear error, and destroy() is idempotent", async () => {
  const m = await tiny();
  m.destroy();
  m.destroy();
  await assert.rejects(async () => await m.forward([[1]]), /the model was destroyed/);
  await assert.rejects(async () => await generateTextSimple(m, [[1]], 1, 8), /the model was destroyed/);
});

Deno.test("overlapping calls on one model are queued and each gets its own answer", async () => {
  using m = await tiny();
  const a = generateTextSimple(m, [[1, 2, 3]], 5, 8);
  const b = generate(m, [[4, 5]], { maxNewTokens: 7 });
  const c = m.forward([[1, 2, 3]]);
  const [ra, rb] = await Promise.all([a, b, c]);
  assert.deepEqual(ra, await generateTextSimple(m, [[1, 2, 3]], 5, 8));
  assert.deepEqual(rb, await generate(m, [[4, 5]], { maxNewTokens: 7 }));
});

Deno.test("no WebGPU adapter: WebGPUUnavailableError says how to get one", async () => {
  const gpu = navigator.gpu;
  const orig = gpu.requestAdapter;
  gpu.requestAdapter = () => Promise.resolve(null);
  try {
    await assert.rejects(requestGpu(), (e: Error) => {
      assert.ok(e instanceof WebGPUUnavailableError);
      assert.match(e.message, /no WebGPU adapter was found.*, .*mesa-vulkan-drivers/);
      // on Linux the request asked for Vulkan alone (unless the variable was set), and says how to ask for OpenGL
      const forced = Deno.build.os === "linux" && Deno.env.get("DENO_WEBGPU_BACKEND") === undefined;
      assert.equal(/DENO_WEBGPU_BACKEND=gl/.test(e.message), forced);
      return true;
    });
  } finally {
    gpu.requestAdapter = orig;
  }
});

Deno.test("Mesa's OpenGL llvmpipe (no shader-f16) is refused with the fix, not run for minutes", async () => {
  const gpu = navigator.gpu;
  const orig = gpu.requestAdapter;
  const fake = {
    info: { isFallbackAdapter: true, description: "llvmpipe (LLVM 15.0.6, 256 bits)" },
    features: new Set(),
  };
  gpu.requestAdapter = () => Promise.resolve(fake as unknown as GPUAdapter);
  try {
    await assert.rejects(requestGpu(), (e: Error) => {
      assert.ok(e instanceof WebGPUUnavailableError);
      assert.match(e.message, /llvmpipe through OpenGL.*mesa-vulkan-drivers/);
      return true;
    });
  } finally {
    gpu.requestAdapter = orig;
  }
});
