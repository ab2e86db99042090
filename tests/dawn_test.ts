// WGSL that both WebGPU compilers accept (wgpu/naga in Deno, Dawn/Tint through npm:webgpu), and
// the model giving the same results on both: the PyTorch fixtures, sampled ids, f16 and q8.
import assert from "node:assert/strict";
import * as kernels from "../kernels/mod.ts";
import type { KernelSpec } from "../kernels/mod.ts";
import { getGpu, releaseGpu } from "../src/gpu/device.ts";
import { pipelineOf } from "../src/gpu/pipelines.ts";
import { GPTModel } from "../src/model/model.ts";
import { generate } from "../src/model/generate.ts";
import { backward } from "../src/train/train.ts";
import { AdamW } from "../src/train/optimizer.ts";
import { assertClose, f32File, fixture, TESTDATA } from "./_helpers.ts";
import { dawn } from "./_dawn.ts";

const SPECS = Object.values(kernels).filter((v): v is KernelSpec =>
  typeof v === "object" && v !== null && typeof (v as KernelSpec).code === "string"
);

Deno.test("every kernel compiles on Dawn (Tint) and on wgpu (naga)", async () => {
  assert.ok(SPECS.length >= 25, `only ${SPECS.length} kernels found`);
  for (const [name, gpu] of [["Dawn", await getGpu(dawn())], ["wgpu", await getGpu()]] as const) {
    for (const spec of SPECS) {
      await pipelineOf(gpu.device, spec).catch((e) => assert.fail(`${name}: ${(e as Error).message}`));
    }
  }
});

Deno.test("a kernel that does not compile is reported with the compiler's line and column on both compilers", async () => {
  const bad = (body: string): KernelSpec => ({
    name: "bad",
    bindings: ["write"],
    code:
      `@group(0) @binding(0) var<storage, read_write> o: array<u32>;\n@compute @workgroup_size(1) fn main() { ${body} }\n`,
  });
  for (const gpu of [await getGpu(dawn()), await getGpu()]) {
    await assert.rejects(pipelineOf(gpu.device, bad("o[0] = nope;")), /Cannot compile kernel 'bad': line 2:\d+: /);
  }
  // naga lets this through; the specification (and Tint) do not
  await assert.rejects(
    pipelineOf((await getGpu(dawn())).device, bad("o[0] = 3u * 5u ^ 7u;")),
    /line 2:51: mixing '\*' and '\^' requires parenthesis/,
  );
});

interface Fx {
  input_ids: number[][];
  generated_ids: number[][];
  max_new_tokens: number;
}

Deno.test("on Dawn both PyTorch fixtures give logits within 1e-4 + 1e-4|ref| and the same ids", async () => {
  for (const [name, path] of [["tiny_book", "tiny_book.safetensors"], ["tiny_hf_gpt2", "tiny_hf_gpt2"]]) {
    const fx = fixture<Fx>(`${name}.json`);
    using model = await GPTModel.load(`${TESTDATA}${path}`, { gpu: dawn() });
    assertClose(await model.forward(fx.input_ids), f32File(`${name}.logits.f32`), 1e-4, 1e-4, `${name} logits`);
    assert.deepEqual(await generate(model, fx.input_ids, { maxNewTokens: fx.max_new_tokens }), fx.generated_ids);
  }
});

Deno.test("Dawn and wgpu sample the same ids (seeded, top-k, top-p) and store f16 and q8 weights alike", async () => {
  const file = `${TESTDATA}tiny_book.safetensors`;
  const fx = fixture<Fx>("tiny_book.json");
  const sampling = { maxNewTokens: 12, temperature: 0.9, topK: 20, topP: 0.95, seed: 7 };
  for (const dtype of ["f32", "f16", "q8"] as const) {
    const ids: number[][][] = [];
    for (const gpu of [dawn(), undefined]) {
      using model = await GPTModel.load(file, { gpu, dtype });
      ids.push(await generate(model, fx.input_ids, sampling));
      ids.push(await generate(model, fx.input_ids, { maxNewTokens: 8 }));
    }
    assert.deepEqual(ids[0], ids[2], `${dtype} sampled ids`);
    assert.deepEqual(ids[1], ids[3], `${dtype} greedy ids`);
  }
});

Deno.test("a training step on Dawn (Tint) gives wgpu's loss, and the same loss after an AdamW step", async () => {
  const cfg = {
    vocab_size: 97,
    context_length: 16,
    emb_dim: 16,
    n_heads: 2,
    n_layers: 2,
    drop_rate: 0,
    qkv_bias: true,
  };
  const ids = [[1, 5, 9, 13, 2, 7, 40, 96], [3, 3, 3, 50, 61, 0, 12, 8]];
  const targets = ids.map((r) => r.map((v) => (v * 7 + 1) % 97));
  const losses: number[][] = [];
  for (const gpu of [undefined, dawn()]) {
    using model = await GPTModel.create(cfg, { seed: 3, trainable: true, gpu });
    const opt = new AdamW(model, { lr: 1e-2 });
    opt.zeroGrad();
    const first = await backward(model, ids, targets);
    opt.step();
    losses.push([first, await backward(model, ids, targets)]);
  }
  assertClose(losses[1], losses[0], 1e-5, 1e-5, "Dawn's losses against wgpu's");
  assert.notEqual(losses[0][0], losses[0][1]);
});

Deno.test("releaseGpu() destroys Dawn's shared device (a live one crashes the test process at exit)", async () => {
  const { device } = await getGpu(dawn());
  await releaseGpu(dawn());
  assert.equal((await device.lost).reason, "destroyed");
  assert.notEqual((await getGpu(dawn())).device, device, "a later call gets a new device");
  await releaseGpu(dawn());
});
