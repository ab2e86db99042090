// The PyTorch fixtures: weights from safetensors (book and Hugging Face names), logits and ids.
import assert from "node:assert/strict";
import { GPTModel } from "../src/model.ts";
import { generate, generateTextSimple } from "../src/generate.ts";
import { SafetensorsFile, writeSafetensors } from "../src/safetensors.ts";
import { assertClose, f32File, fixture, TESTDATA } from "./_helpers.ts";

interface Fx {
  input_ids: number[][];
  generated_ids: number[][];
  max_new_tokens: number;
  logits_shape: number[];
}

const CASES = [
  { name: "tiny_book", path: `${TESTDATA}tiny_book.safetensors` },
  { name: "tiny_hf_gpt2", path: `${TESTDATA}tiny_hf_gpt2` },
];

for (const c of CASES) {
  Deno.test(`GPTModel.load() ${c.name}: logits within 1e-4 + 1e-4|ref| and generated ids exact`, async () => {
    const fx = fixture<Fx>(`${c.name}.json`);
    using model = await GPTModel.load(c.path);
    const logits = await model.forward(fx.input_ids);
    const ref = f32File(`${c.name}.logits.f32`);
    assert.equal(logits.length, fx.logits_shape.reduce((a, b) => a * b, 1));
    assertClose(logits, ref, 1e-4, 1e-4, `${c.name} logits`);
    const ctx = model.config.context_length;
    assert.deepEqual(await generateTextSimple(model, fx.input_ids, fx.max_new_tokens, ctx), fx.generated_ids);
    assert.deepEqual(await generate(model, fx.input_ids, { maxNewTokens: fx.max_new_tokens }), fx.generated_ids);
  });
}

async function convert(src: string, dst: string, dtype: "F16" | "BF16") {
  using f = await SafetensorsFile.open(src);
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, info] of f.tensors) tensors[name] = { shape: info.shape, data: await f.read(name) };
  await writeSafetensors(dst, tensors, dtype, f.metadata);
}

Deno.test("GPTModel.load() reads F16 and BF16 files: logits within 16-bit tolerance of PyTorch's, F16 ids equal", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const dtype of ["F16", "BF16"] as const) {
      const fx = fixture<Fx>("tiny_book.json");
      const file = `${dir}/tiny_book_${dtype}.safetensors`;
      await convert(`${TESTDATA}tiny_book.safetensors`, file, dtype);
      using model = await GPTModel.load(file);
      const logits = await model.forward(fx.input_ids);
      const ref = f32File("tiny_book.logits.f32");
      let scale = 0;
      for (const v of ref) scale = Math.max(scale, Math.abs(v));
      // weights rounded to 11 (F16) or 8 (BF16) significant bits: errors of that order relative to the logits' scale
      const rel = dtype === "F16" ? 0.01 : 0.06;
      assertClose(logits, ref, rel * scale, 0, `${dtype} logits`);
      if (dtype === "F16") {
        assert.deepEqual(await generate(model, fx.input_ids, { maxNewTokens: fx.max_new_tokens }), fx.generated_ids);
      }
      const hf = `${dir}/hf_${dtype}`;
      await Deno.mkdir(hf);
      await Deno.copyFile(`${TESTDATA}tiny_hf_gpt2/config.json`, `${hf}/config.json`);
      await convert(`${TESTDATA}tiny_hf_gpt2/model.safetensors`, `${hf}/model.safetensors`, dtype);
      using m2 = await GPTModel.load(hf, { dtype: "f16" });
      const fx2 = fixture<Fx>("tiny_hf_gpt2.json");
      const l2 = await m2.forward(fx2.input_ids);
      const ref2 = f32File("tiny_hf_gpt2.logits.f32");
      let s2 = 0;
      for (const v of ref2) s2 = Math.max(s2, Math.abs(v));
      assertClose(l2, ref2, rel * s2 * 1.5, 0, `${dtype} hf logits`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("GPTModel.load() accepts a 'transformer.' prefix and an untied lm_head", async () => {
  const dir = await Deno.makeTempDir();
  try {
    using f = await SafetensorsFile.open(`${TESTDATA}tiny_hf_gpt2/model.safetensors`);
    const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const [name, info] of f.tensors) {
      tensors[`transformer.${name}`] = { shape: info.shape, data: await f.read(name) };
    }
    const wte = tensors["transformer.wte.weight"];
    tensors["lm_head.weight"] = { shape: wte.shape, data: wte.data.slice() };
    await Deno.copyFile(`${TESTDATA}tiny_hf_gpt2/config.json`, `${dir}/config.json`);
    await writeSafetensors(`${dir}/model.safetensors`, tensors);
    using model = await GPTModel.load(dir);
    const fx = fixture<Fx>("tiny_hf_gpt2.json");
    assertClose(await model.forward(fx.input_ids), f32File("tiny_hf_gpt2.logits.f32"), 1e-4, 1e-4, "prefixed");
    // an lm_head that differs from wte is used
    tensors["lm_head.weight"].data.fill(0);
    await writeSafetensors(`${dir}/model.safetensors`, tensors);
    using zero = await GPTModel.load(dir);
    assert.ok((await zero.forward(fx.input_ids)).every((v) => v === 0), "a zero lm_head gives zero logits");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
