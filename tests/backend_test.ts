// The backend profile: the adapter's defaults, overrides, and the combinations it refuses.
import assert from "node:assert/strict";
import { chooseBackend } from "../src/engine/backend.ts";
import { getGpu, type GpuContext } from "../src/gpu/device.ts";
import { GPTModel } from "../src/model/model.ts";
import { randomParams, tensorsOf } from "./_helpers.ts";

const CFG = { vocab_size: 300, context_length: 8, emb_dim: 16, n_heads: 2, n_layers: 1, drop_rate: 0, qkv_bias: true };

async function contexts(): Promise<{ cpu: GpuContext; gpu: GpuContext }> {
  const real = await getGpu();
  return { cpu: { ...real, isCpu: true }, gpu: { ...real, isCpu: false } };
}

Deno.test("chooseBackend() gives CPU adapters the wide, barrier-free kernels and GPUs the k-split ones", async () => {
  const { cpu, gpu } = await contexts();
  const c = chooseBackend(cpu, { headDim: 64 });
  assert.deepEqual(
    { ...c },
    {
      adapter: "cpu",
      matmul: "wide",
      fuseLayerNorm: false,
      attention: "serial",
      argmax: "serial",
      xUniform: true,
      headScreen: "auto",
      matmulWorkgroup: 16,
      matmulKSlices: 1,
      submitSteps: 1,
      submitBlocks: 4,
    },
  );
  const g = chooseBackend(gpu, { headDim: 64 });
  assert.equal(g.adapter, "gpu");
  assert.equal(g.matmul, "ksplit");
  assert.equal(g.fuseLayerNorm, true);
  assert.equal(g.attention, "block");
  assert.equal(g.argmax, "split");
  assert.equal(g.xUniform, false);
  assert.equal(g.headScreen, "never");
  assert.equal(g.matmulWorkgroup, 4);
  assert.equal(g.submitSteps, 32);
  assert.ok(g.matmulKSlices > 1 && g.matmulKSlices * 4 * 4 <= 1024, `k-slices ${g.matmulKSlices}`);
  // a head size that is not a multiple of 4 gets the attention kernel that takes any
  assert.equal(chooseBackend(cpu, { headDim: 6 }).attention, "parts");
  assert.equal(chooseBackend(gpu, { headDim: 6 }).attention, "parts");
  assert.ok(Object.isFrozen(c));
});

Deno.test("chooseBackend() applies overrides and derives the choices that follow from them", async () => {
  const { cpu, gpu } = await contexts();
  const k = chooseBackend(cpu, { headDim: 64 }, { matmul: "ksplit" });
  assert.equal(k.fuseLayerNorm, true);
  assert.equal(k.xUniform, false, "x from a uniform buffer is for the wide kernel only");
  assert.equal(k.headScreen, "never", "the screen needs the wide kernel");
  const w = chooseBackend(gpu, { headDim: 64 }, { matmul: "wide", argmax: "serial" });
  assert.equal(w.xUniform, true);
  assert.equal(w.headScreen, "auto");
  assert.equal(chooseBackend(cpu, { headDim: 64 }, { attention: "parts" }).attention, "parts");
  // 8-bit weights: the head screen's 8-bit copy would save nothing
  assert.equal(chooseBackend(cpu, { headDim: 64, dtype: "q8" }).headScreen, "never");
  assert.throws(() => chooseBackend(cpu, { headDim: 64, dtype: "q8" }, { headScreen: "always" }), RangeError);
});

Deno.test("chooseBackend() refuses unknown choices and combinations the kernels cannot run, naming the value", async () => {
  const { cpu } = await contexts();
  const bad: [object, RegExp][] = [
    [{ matmul: "tiled" }, /backend\.matmul 'tiled' is not one of "wide", "ksplit"/],
    [{ attention: "flash" }, /backend\.attention 'flash'/],
    [{ argmax: "single" }, /backend\.argmax 'single'/],
    [{ headScreen: "yes" }, /backend\.headScreen 'yes'/],
    [{ xUniform: "1" }, /backend\.xUniform '1' is not true or false/],
    [{ matmul: "ksplit", xUniform: true }, /xUniform needs the "wide" matrix kernel/],
    [
      { argmax: "split", headScreen: "always" },
      /headScreen 'always' needs the "wide" matrix kernel, the "serial" argmax/,
    ],
  ];
  for (const [options, message] of bad) {
    assert.throws(
      () => chooseBackend(cpu, { headDim: 64 }, options),
      (e: Error) => e instanceof RangeError && message.test(e.message),
    );
  }
  assert.throws(
    () => chooseBackend(cpu, { headDim: 6 }, { attention: "block" }),
    /head size 6 is not a multiple of 4, use "parts"/,
  );
  assert.throws(() => chooseBackend(cpu, { headDim: 64 }, "gpu" as never), TypeError);
});

Deno.test("GPTModel reports its backend profile, and the backend option reaches it", async () => {
  const p = randomParams(CFG, 1);
  using plain = await GPTModel.fromTensors(CFG, tensorsOf(CFG, p));
  const real = await getGpu();
  assert.equal(plain.backend.adapter, real.isCpu ? "cpu" : "gpu");
  using parts = await GPTModel.fromTensors(CFG, tensorsOf(CFG, p), {
    backend: { attention: "parts", matmul: "ksplit" },
  });
  assert.equal(parts.backend.attention, "parts");
  assert.equal(parts.backend.matmul, "ksplit");
  // the same logits bit for bit are not promised across kernel families, but both match each other closely
  const a = await plain.forward([[1, 2, 3]]);
  const b = await parts.forward([[1, 2, 3]]);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-4, `logit ${i}: ${a[i]} vs ${b[i]}`);
  await assert.rejects(
    () => GPTModel.fromTensors(CFG, tensorsOf(CFG, p), { backend: { attention: "nope" as never } }),
    RangeError,
  );
});
