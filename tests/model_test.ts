// The whole model on the GPU against the CPU reference, on small random models with odd shapes.
import assert from "node:assert/strict";
import { type GPTConfig, validateConfig } from "../src/weights/config.ts";
import { GPTModel } from "../src/model/model.ts";
import type { BackendOptions } from "../src/engine/backend.ts";
import { generate, generateTextSimple } from "../src/model/generate.ts";
import { forwardRef, generateRef } from "../src/engine/reference.ts";
import { TorchGenerator } from "../src/weights/torch_random.ts";
import { assertClose, randomIds, randomParams, tensorsOf, toHalf, toQ8 } from "./_helpers.ts";

const ODD: GPTConfig = {
  vocab_size: 601, // not a multiple of 4, 64 or 256; three vocabulary chunks below
  context_length: 70, // more than one 64-key attention block
  emb_dim: 24, // head_dim 12
  n_heads: 2,
  n_layers: 2,
  drop_rate: 0.1,
  qkv_bias: true,
};

async function oddModel(dtype: "f32" | "f16" | "q8" = "f32", seed = 5, cfg = ODD, backend?: BackendOptions) {
  const p = randomParams(cfg, seed);
  // 256 vocabulary rows of 24 floats per chunk
  const model = await GPTModel.fromTensors(cfg, tensorsOf(cfg, p), { dtype, maxBindingBytes: 256 * 24 * 4, backend });
  return { model, p, cfg: validateConfig(cfg) };
}

Deno.test("GPTModel.forward() matches the CPU reference: one token, odd vocab in chunks, head_dim 12, batch 2, full context", async () => {
  const { model, p, cfg } = await oddModel();
  using _ = model;
  const g = new TorchGenerator(11);
  for (const [B, T] of [[1, 1], [2, 9], [1, 70]]) {
    const ids = randomIds(g, B, T, cfg.vocab_size);
    ids[0][0] = cfg.vocab_size - 1;
    const logits = await model.forward(ids);
    assert.equal(logits.length, B * T * cfg.vocab_size);
    for (let b = 0; b < B; b++) {
      const ref = forwardRef(cfg, p, ids[b]);
      assertClose(
        logits.subarray(b * T * cfg.vocab_size, (b + 1) * T * cfg.vocab_size),
        ref,
        2e-4,
        2e-4,
        `B=${B} T=${T} row ${b}`,
      );
    }
  }
});

Deno.test("generateTextSimple() matches generate_text_simple on the CPU, past the context and with a smaller contextSize", async () => {
  const { model, p, cfg } = await oddModel("f32", 9, { ...ODD, context_length: 12 });
  using _ = model;
  const g = new TorchGenerator(3);
  const ids = randomIds(g, 2, 5, cfg.vocab_size);
  for (const ctx of [12, 4]) {
    const out = await generateTextSimple(model, ids, 10, ctx);
    for (let b = 0; b < 2; b++) {
      assert.deepEqual(out[b], generateRef(cfg, p, ids[b], 10, ctx), `row ${b} contextSize ${ctx}`);
    }
  }
  // a prompt longer than the context is cropped
  const long = randomIds(g, 1, 20, cfg.vocab_size);
  assert.deepEqual((await generateTextSimple(model, long, 3, 12))[0], generateRef(cfg, p, long[0], 3, 12));
});

Deno.test("generate() with the key/value cache returns the ids of generateTextSimple(), f32 and f16, past the context", async () => {
  for (const dtype of ["f32", "f16"] as const) {
    const { model, cfg } = await oddModel(dtype, 21, { ...ODD, context_length: 10 });
    using _ = model;
    const g = new TorchGenerator(4);
    for (const [B, T, n, ctx] of [[1, 1, 25, 10], [2, 4, 15, 10], [3, 3, 12, 5], [1, 12, 4, 10]]) {
      const ids = randomIds(g, B, T, cfg.vocab_size);
      const a = await generate(model, ids, { maxNewTokens: n, contextSize: ctx });
      const b = await generateTextSimple(model, ids, n, ctx);
      assert.deepEqual(a, b, `${dtype} B=${B} T=${T} new=${n} ctx=${ctx}`);
    }
  }
});

Deno.test("GPTModel with 8-bit weights equals the reference on the weights it stores, in both kernel families; generate() equals generateTextSimple()", async () => {
  for (const backend of [{ matmul: "wide" }, { matmul: "ksplit", argmax: "split" }] as const) {
    const { model, p, cfg } = await oddModel("q8", 13, ODD, backend);
    using _ = model;
    assert.equal(model.dtype, "q8");
    assert.equal(model.backend.headScreen, "never");
    // every matrix (embeddings and head included) as its rows' 32-value runs quantised; pos_emb stays float32
    const q = new Map([...p].map(([k, v]) => {
      if (!/weight$/.test(k) || /pos_emb/.test(k)) return [k, v];
      const K = /ff\.layers\.2\.weight$/.test(k) ? 4 * cfg.emb_dim : cfg.emb_dim;
      return [k, toQ8(v, K)];
    }));
    const ids = randomIds(new TorchGenerator(8), 2, 16, cfg.vocab_size);
    const logits = await model.forward(ids);
    const V = cfg.vocab_size;
    for (let b = 0; b < 2; b++) {
      assertClose(logits.subarray(b * 16 * V, (b + 1) * 16 * V), forwardRef(cfg, q, ids[b]), 2e-4, 2e-4, `q8 row ${b}`);
    }
    assert.deepEqual(
      await generate(model, ids, { maxNewTokens: 60 }),
      await generateTextSimple(model, ids, 60, cfg.context_length),
      `${backend.matmul}: generate against generateTextSimple past the context`,
    );
    // the weights take 1.125 bytes each in the matrices
    using f32 = (await oddModel("f32", 13)).model;
    assert.ok(model.weightBytes < 0.4 * f32.weightBytes, `q8 ${model.weightBytes} bytes, f32 ${f32.weightBytes}`);
  }
});

Deno.test("GPTModel with 16-bit weights stays within half-precision error of the f32 model", async () => {
  const { model: m32, p, cfg } = await oddModel("f32", 13);
  const { model: m16 } = await oddModel("f16", 13);
  using _a = m32;
  using _b = m16;
  const ids = randomIds(new TorchGenerator(8), 1, 16, cfg.vocab_size);
  // the f16 model equals the f32 reference on half-rounded matrices (embeddings and head included)
  const half = new Map([...p].map(([k, v]) => [k, /weight$/.test(k) && !/pos_emb/.test(k) ? toHalf(v) : v]));
  const ref = forwardRef(cfg, half, ids[0]);
  assertClose(await m16.forward(ids), ref, 5e-4, 5e-4, "f16 vs reference on rounded weights");
  // and differs from the f32 model by what 16-bit rounding of weights gives: 2^-11 relative per weight
  const l32 = await m32.forward(ids);
  const l16 = await m16.forward(ids);
  let maxRef = 0;
  for (const v of l32) maxRef = Math.max(maxRef, Math.abs(v));
  assertClose(l16, l32, 0.02 * maxRef, 0, "f16 vs f32");
});

Deno.test("the GPU path (LayerNorm fused into the k-split matrix kernel; key-block attention and split argmax, or workgroup-wide attention and serial argmax) matches the CPU reference, and generate() matches generateTextSimple() past the context", async () => {
  for (const attention of ["block", "parts"] as const) {
    const backend: BackendOptions = { matmul: "ksplit", attention, argmax: attention === "block" ? "split" : "serial" };
    const { model, p, cfg } = await oddModel("f32", 17, { ...ODD, context_length: 40 }, backend);
    assert.equal(model.backend.fuseLayerNorm, true, "the k-split kernel does the LayerNorms");
    assert.equal(model.backend.attention, attention);
    using _ = model;
    const ids = randomIds(new TorchGenerator(12), 2, 11, cfg.vocab_size);
    const logits = await model.forward(ids);
    for (let b = 0; b < 2; b++) {
      const V = cfg.vocab_size;
      assertClose(
        logits.subarray(b * 11 * V, (b + 1) * 11 * V),
        forwardRef(cfg, p, ids[b]),
        2e-4,
        2e-4,
        `${attention}: row ${b}`,
      );
    }
    // 11 + 40 tokens: the window slides past the 40-token context
    assert.deepEqual(
      await generate(model, ids, { maxNewTokens: 40 }),
      await generateTextSimple(model, ids, 40, cfg.context_length),
      `${attention}: generate against generateTextSimple`,
    );
  }
});

Deno.test("GPTModel.fromTensors() releases every tensor once, and reuse of released arrays does not change the model", async () => {
  const p = randomParams(ODD, 9);
  const released = new Map<string, number>();
  const tensors = [...tensorsOf(ODD, p)].map((t) => ({
    ...t,
    data: t.data.slice(),
    release() {
      released.set(t.name, (released.get(t.name) ?? 0) + 1);
      this.data.fill(NaN); // what reuse by the producer would do
    },
  }));
  using model = await GPTModel.fromTensors(ODD, tensors);
  assert.deepEqual([...released.keys()].sort(), tensors.map((t) => t.name).sort());
  for (const [name, n] of released) assert.equal(n, 1, `${name} released ${n} times`);
  const ids = randomIds(new TorchGenerator(3), 1, 5, ODD.vocab_size!);
  const got = await model.forward(ids);
  assertClose(got, forwardRef(validateConfig(ODD), p, ids[0]), 2e-4, 2e-4, "logits after release");
});

Deno.test("products with x from a uniform buffer (CPU adapters) give the logits and ids of the storage-buffer kernel bit for bit (backend.xUniform false)", async () => {
  for (const dtype of ["f32", "f16"] as const) {
    const { model: a } = await oddModel(dtype, 23, ODD, { matmul: "wide" });
    const { model: b, cfg } = await oddModel(dtype, 23, ODD, { matmul: "wide", xUniform: false });
    assert.equal(a.backend.xUniform, true);
    assert.equal(b.backend.xUniform, false);
    using _a = a;
    using _b = b;
    const ids = randomIds(new TorchGenerator(14), 1, 1, cfg.vocab_size);
    assert.deepEqual([...await a.forward(ids)], [...await b.forward(ids)], `${dtype}: one-token logits`);
    const rows = randomIds(new TorchGenerator(15), 3, 9, cfg.vocab_size);
    assert.deepEqual([...await a.forward(rows)], [...await b.forward(rows)], `${dtype}: 3 x 9-token logits`);
    assert.deepEqual(
      await generate(a, ids, { maxNewTokens: 30 }),
      await generate(b, ids, { maxNewTokens: 30 }),
      `${dtype}: generate`,
    );
  }
});
