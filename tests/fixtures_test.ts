// The PyTorch fixtures: weights from safetensors (book and Hugging Face names), logits and ids.
import assert from "node:assert/strict";
import { GPTModel } from "../src/model/model.ts";
import { generate, generateTextSimple } from "../src/model/generate.ts";
import { SafetensorsFile, writeSafetensors } from "../src/weights/safetensors.ts";
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

Deno.test("the CLI's --weights and --ids reproduce both fixtures' generated ids", async () => {
  const { main } = await import("../src/cli/cli.ts");
  for (const c of CASES) {
    const fx = fixture<Fx>(`${c.name}.json`);
    for (let b = 0; b < fx.input_ids.length; b++) {
      const out: string[] = [];
      const code = await main(
        [
          "--weights",
          c.path,
          "--ids",
          fx.input_ids[b].join(","),
          "--max-new-tokens",
          String(fx.max_new_tokens),
          "--quiet",
          "--no-stream",
        ],
        (s) => out.push(s),
        () => {},
      );
      assert.equal(code, 0);
      assert.ok(out.includes(`Output: [[${fx.generated_ids[b].join(", ")}]]`), `${c.name} row ${b}: ${out.join("\n")}`);
    }
  }
});

Deno.test("Hugging Face files of other dims load like the same weights under the book's names (F16, prefix, untied head)", async () => {
  const { randomParams, shapes } = await import("./_helpers.ts");
  const cfg = {
    vocab_size: 300,
    context_length: 20,
    emb_dim: 40,
    n_heads: 5,
    n_layers: 3,
    drop_rate: 0,
    qkv_bias: true,
  };
  const p = randomParams(cfg, 31);
  const C = cfg.emb_dim;
  const T = (w: Float32Array, rows: number, cols: number) => { // [rows, cols] -> [cols, rows]
    const o = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) o[c * rows + r] = w[r * cols + c];
    return o;
  };
  const hf: Record<string, { shape: number[]; data: Float32Array }> = {};
  const put = (name: string, shape: number[], data: Float32Array) => hf[`transformer.${name}`] = { shape, data };
  put("wte.weight", [cfg.vocab_size, C], p.get("tok_emb.weight")!);
  put("wpe.weight", [cfg.context_length, C], p.get("pos_emb.weight")!);
  for (let l = 0; l < cfg.n_layers; l++) {
    const b = `trf_blocks.${l}`;
    const qkv = new Float32Array(3 * C * C);
    ["query", "key", "value"].forEach((n, i) => qkv.set(p.get(`${b}.att.W_${n}.weight`)!, i * C * C));
    const qkvB = new Float32Array(3 * C);
    ["query", "key", "value"].forEach((n, i) => qkvB.set(p.get(`${b}.att.W_${n}.bias`)!, i * C));
    put(`h.${l}.ln_1.weight`, [C], p.get(`${b}.norm1.scale`)!);
    put(`h.${l}.ln_1.bias`, [C], p.get(`${b}.norm1.shift`)!);
    put(`h.${l}.attn.c_attn.weight`, [C, 3 * C], T(qkv, 3 * C, C));
    put(`h.${l}.attn.c_attn.bias`, [3 * C], qkvB);
    put(`h.${l}.attn.bias`, [1, 1, cfg.context_length, cfg.context_length], new Float32Array(cfg.context_length ** 2));
    put(`h.${l}.attn.c_proj.weight`, [C, C], T(p.get(`${b}.att.out_proj.weight`)!, C, C));
    put(`h.${l}.attn.c_proj.bias`, [C], p.get(`${b}.att.out_proj.bias`)!);
    put(`h.${l}.ln_2.weight`, [C], p.get(`${b}.norm2.scale`)!);
    put(`h.${l}.ln_2.bias`, [C], p.get(`${b}.norm2.shift`)!);
    put(`h.${l}.mlp.c_fc.weight`, [C, 4 * C], T(p.get(`${b}.ff.layers.0.weight`)!, 4 * C, C));
    put(`h.${l}.mlp.c_fc.bias`, [4 * C], p.get(`${b}.ff.layers.0.bias`)!);
    put(`h.${l}.mlp.c_proj.weight`, [4 * C, C], T(p.get(`${b}.ff.layers.2.weight`)!, C, 4 * C));
    put(`h.${l}.mlp.c_proj.bias`, [C], p.get(`${b}.ff.layers.2.bias`)!);
  }
  put("ln_f.weight", [C], p.get("final_norm.scale")!);
  put("ln_f.bias", [C], p.get("final_norm.shift")!);
  hf["lm_head.weight"] = { shape: [cfg.vocab_size, C], data: p.get("out_head.weight")! };
  const dir = await Deno.makeTempDir();
  try {
    const s = shapes(cfg);
    const book: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const [name, data] of p) book[name] = { shape: s.get(name)!, data };
    await writeSafetensors(`${dir}/book.safetensors`, book, "F16", { config: JSON.stringify(cfg) });
    await writeSafetensors(`${dir}/model.safetensors`, hf, "F16");
    await Deno.writeTextFile(
      `${dir}/config.json`,
      JSON.stringify({ n_embd: C, n_head: 5, n_layer: 3, n_positions: 20, vocab_size: 300, layer_norm_epsilon: 1e-5 }),
    );
    using a = await GPTModel.load(`${dir}/book.safetensors`);
    using b = await GPTModel.load(dir);
    const ids = [[1, 299, 7, 42, 100, 5, 0, 250], [9, 8, 7, 6, 5, 4, 3, 2]];
    assertClose(await b.forward(ids), await a.forward(ids), 1e-5, 1e-5, "hf vs book");
    assert.deepEqual(await generate(b, ids, { maxNewTokens: 15 }), await generate(a, ids, { maxNewTokens: 15 }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
