// Malformed and mismatched weights files: one clear error each, nothing left on the GPU.
import assert from "node:assert/strict";
import { GPTModel } from "../src/model/model.ts";
import { SafetensorsError, SafetensorsFile, toFloat32, writeSafetensors } from "../src/weights/safetensors.ts";
import { WeightsError } from "../src/weights/model_weights.ts";
import { rawSafetensors, TESTDATA } from "./_helpers.ts";
import { getGpu } from "../src/gpu/device.ts";

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function bookTensors(): Promise<
  { tensors: Record<string, { shape: number[]; data: Float32Array }>; meta: Record<string, string> }
> {
  using f = await SafetensorsFile.open(`${TESTDATA}tiny_book.safetensors`);
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, info] of f.tensors) tensors[name] = { shape: info.shape, data: await f.read(name) };
  return { tensors, meta: f.metadata };
}

Deno.test("SafetensorsFile.open() rejects malformed headers, each with one clear error", async () => {
  await withDir(async (dir) => {
    const cases: [string, Uint8Array, RegExp][] = [
      ["short", new Uint8Array(3), /too few for a safetensors header/],
      ["len past end", rawSafetensors({}, new Uint8Array(0), 1000n), /header length 1000 is larger than the file/],
      ["huge len", rawSafetensors({}, new Uint8Array(0), 1n << 60n), /larger than the file/],
      ["bad json", rawSafetensors("{not json", new Uint8Array(0)), /not valid JSON/],
      ["array", rawSafetensors("[1,2]", new Uint8Array(0)), /not a JSON object/],
      [
        "bad dtype",
        rawSafetensors({ a: { dtype: "Q7", shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)),
        /unknown dtype "Q7"/,
      ],
      [
        "bad shape",
        rawSafetensors({ a: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)),
        /invalid shape/,
      ],
      [
        "out of range",
        rawSafetensors({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, new Uint8Array(4)),
        /past the data section/,
      ],
      [
        "reversed",
        rawSafetensors({ a: { dtype: "F32", shape: [0], data_offsets: [4, 0] } }, new Uint8Array(4)),
        /ends \(0\) before it begins \(4\)/,
      ],
      [
        "size mismatch",
        rawSafetensors({ a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)),
        /shape \[3\] of F32 \(12 bytes\) but 8 bytes/,
      ],
      [
        "overlap",
        rawSafetensors({
          a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
          b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
        }, new Uint8Array(12)),
        /overlap/,
      ],
    ];
    for (const [name, bytes, re] of cases) {
      const p = `${dir}/${name.replace(/ /g, "_")}.safetensors`;
      await Deno.writeFile(p, bytes);
      await assert.rejects(SafetensorsFile.open(p), (e: Error) => {
        assert.ok(e instanceof SafetensorsError, `${name}: ${e}`);
        assert.match(e.message, re, name);
        return true;
      });
      await assert.rejects(GPTModel.load(p), SafetensorsError);
    }
  });
});

Deno.test("toFloat32() converts F16 and BF16", () => {
  const f16 = new Uint8Array(new Float16Array([1.5, -2, 65504]).buffer);
  assert.deepEqual([...toFloat32(f16, "F16")], [1.5, -2, 65504]);
  const bf = new Uint8Array(new Uint16Array([0x3fc0, 0xc000]).buffer);
  assert.deepEqual([...toFloat32(bf, "BF16")], [1.5, -2]);
});

Deno.test("GPTModel.load() names a missing path, tensor, wrong shape, unsupported dtype and missing config", async () => {
  await withDir(async (dir) => {
    await assert.rejects(
      GPTModel.load(`${dir}/nope.safetensors`),
      (e: Error) => e instanceof Deno.errors.NotFound && /does not exist/.test(e.message),
    );
    await assert.rejects(GPTModel.load(dir), /has no model.safetensors/);
    const { tensors, meta } = await bookTensors();

    const missing = { ...tensors };
    delete missing["trf_blocks.1.ff.layers.2.bias"];
    await writeSafetensors(`${dir}/missing.safetensors`, missing, "F32", meta);
    await assert.rejects(GPTModel.load(`${dir}/missing.safetensors`), {
      name: "WeightsError",
      message: "Tensor 'trf_blocks.1.ff.layers.2.bias' is missing from the weights",
    });

    const bad = {
      ...tensors,
      "trf_blocks.0.att.out_proj.weight": { shape: [48, 47], data: new Float32Array(48 * 47) },
    };
    await writeSafetensors(`${dir}/shape.safetensors`, bad, "F32", meta);
    await assert.rejects(
      GPTModel.load(`${dir}/shape.safetensors`),
      /Tensor 'trf_blocks.0.att.out_proj.weight' has shape \[48, 47\], expected \[48, 48\]/,
    );

    const extra = { ...tensors, "trf_blocks.5.att.W_query.weight": tensors["trf_blocks.0.att.W_query.weight"] };
    await writeSafetensors(`${dir}/extra.safetensors`, extra, "F32", meta);
    await assert.rejects(GPTModel.load(`${dir}/extra.safetensors`), /not part of a model with 2 layers/);

    await writeSafetensors(`${dir}/noconfig.safetensors`, tensors, "F32");
    await assert.rejects(GPTModel.load(`${dir}/noconfig.safetensors`), /no configuration found/);
    using m = await GPTModel.load(`${dir}/noconfig.safetensors`, { config: JSON.parse(meta.config) });
    assert.equal(m.config.vocab_size, 97);

    // an I32 tensor where a float is needed
    const h: Record<string, unknown> = { __metadata__: meta };
    const parts: Uint8Array[] = [];
    let off = 0;
    for (const [name, t] of Object.entries(tensors)) {
      const dtype = name === "pos_emb.weight" ? "I32" : "F32";
      h[name] = { dtype, shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
      parts.push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
      off += t.data.byteLength;
    }
    const data = new Uint8Array(off);
    let p = 0;
    for (const b of parts) {
      data.set(b, p);
      p += b.length;
    }
    await Deno.writeFile(`${dir}/i32.safetensors`, rawSafetensors(h, data));
    await assert.rejects(GPTModel.load(`${dir}/i32.safetensors`), /dtype I32 is not supported/);

    await writeSafetensors(`${dir}/neither.safetensors`, { foo: tensors["pos_emb.weight"] });
    await assert.rejects(GPTModel.load(`${dir}/neither.safetensors`), WeightsError);
  });
});

Deno.test("GPTModel.load() frees what it uploaded when a later tensor fails", async () => {
  await withDir(async (dir) => {
    const { tensors, meta } = await bookTensors();
    // the bad tensor comes last, after most weights were uploaded
    const bad = { ...tensors };
    const w = bad["out_head.weight"];
    delete bad["out_head.weight"];
    bad["out_head.weight"] = {
      shape: [w.shape[0] + 1, w.shape[1]],
      data: new Float32Array((w.shape[0] + 1) * w.shape[1]),
    };
    await writeSafetensors(`${dir}/late.safetensors`, bad, "F32", meta);
    const created: GPUBuffer[] = [];
    const orig = GPUDevice.prototype.createBuffer;
    GPUDevice.prototype.createBuffer = function (d: GPUBufferDescriptor) {
      const b = orig.call(this, d);
      created.push(b);
      return b;
    };
    try {
      await assert.rejects(GPTModel.load(`${dir}/late.safetensors`), /out_head.weight' has shape \[98, 48\]/);
    } finally {
      GPUDevice.prototype.createBuffer = orig;
    }
    assert.ok(created.length > 10, "weights were uploaded before the failure");
    // writing to a destroyed buffer is a validation error; to a live one it is not
    const { device } = await getGpu();
    for (const b of created.filter((b) => b.usage & GPUBufferUsage.COPY_DST)) {
      device.pushErrorScope("validation");
      device.queue.writeBuffer(b, 0, new Uint32Array(1));
      const err = await device.popErrorScope();
      assert.ok(err, `buffer '${b.label}' was not freed`);
    }
  });
});
