// GPTModel.load() from every kind of source: a URL (HTTP Range requests, config.json beside it),
// a Blob or File, an ArrayBuffer or Uint8Array, a streamed Response; the same logits as from a path.
import assert from "node:assert/strict";
import { GPTModel } from "../src/model/model.ts";
import { huggingFaceConfig, openWeights } from "../src/weights/loader.ts";
import { encodeSafetensors, SafetensorsError } from "../src/weights/safetensors.ts";
import { fixture, TESTDATA } from "./_helpers.ts";
import { serveStatic } from "./_static.ts";

const IDS = fixture<{ input_ids: number[][] }>("tiny_book.json").input_ids;
const BOOK = `${TESTDATA}tiny_book.safetensors`;
const HF = `${TESTDATA}tiny_hf_gpt2`;

async function logits(source: Parameters<typeof GPTModel.load>[0], options = {}): Promise<Float32Array> {
  using model = await GPTModel.load(source, options);
  return await model.forward(IDS);
}

Deno.test("load(URL) reads the file with Range requests, one per tensor, and gives the path's logits bit for bit", async () => {
  const server = serveStatic(TESTDATA);
  try {
    const want = await logits(BOOK);
    assert.deepEqual(await logits(new URL(`${server.url}/tiny_book.safetensors`)), want);
    const gets = server.log.filter((l) => l.includes("tiny_book.safetensors"));
    assert.ok(gets.every((l) => /^GET \S+ bytes=\d+-\d+$/.test(l)), `a request without a range: ${gets}`);
    // the length, the header, then one read per tensor
    assert.ok(gets.length > 12, `${gets.length} reads`);
    // an http(s) string is a URL too; Hugging Face weights find config.json beside them
    const hf = await logits(`${server.url}/tiny_hf_gpt2/model.safetensors`);
    assert.deepEqual(hf, await logits(HF));
    assert.ok(server.log.includes("GET /tiny_hf_gpt2/config.json"));
  } finally {
    await server.close();
  }
});

Deno.test("load() takes a Blob, a File, an ArrayBuffer, a Uint8Array and a streamed Response alike", async () => {
  const want = await logits(BOOK);
  const bytes = await Deno.readFile(BOOK);
  assert.deepEqual(await logits(new Blob([bytes])), want);
  assert.deepEqual(await logits(new File([bytes], "tiny.safetensors")), want);
  assert.deepEqual(await logits(bytes.buffer), want);
  assert.deepEqual(await logits(bytes.subarray(0)), want);
  // a body in small pieces, read forward once
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < bytes.length; i += 1000) c.enqueue(bytes.slice(i, i + 1000));
      c.close();
    },
  });
  assert.deepEqual(await logits(new Response(body, { headers: { "content-length": String(bytes.length) } })), want);
  // a server that ignores Range: the whole body, read as it streams
  const server = serveStatic(TESTDATA, { ranges: false });
  try {
    assert.deepEqual(await logits(new URL(`${server.url}/tiny_book.safetensors`)), want);
    assert.equal(server.log.filter((l) => l.includes("tiny_book")).length, 1);
  } finally {
    await server.close();
  }
});

Deno.test("load() from a source names the problem: 404, truncated bytes, no configuration, a wrong type", async () => {
  const server = serveStatic(TESTDATA);
  try {
    await assert.rejects(GPTModel.load(new URL(`${server.url}/nope.safetensors`)), /server answered 404/);
  } finally {
    await server.close();
  }
  const bytes = await Deno.readFile(BOOK);
  await assert.rejects(
    GPTModel.load(new Blob([bytes.subarray(0, bytes.length - 100)])),
    (e: Error) => e instanceof SafetensorsError && /past the data section|truncated/.test(e.message),
  );
  const hf = await Deno.readFile(`${HF}/model.safetensors`);
  await assert.rejects(GPTModel.load(hf), /no configuration found.*options\.config/);
  const config = huggingFaceConfig(JSON.parse(await Deno.readTextFile(`${HF}/config.json`)), "config.json");
  assert.deepEqual(await logits(hf, { config }), await logits(HF));
  await assert.rejects(GPTModel.load(42 as unknown as string), /pass a path, a URL, a Blob/);
});

Deno.test("Hugging Face weights of a GPT-2 width without config.json get GPT-2's head count", async () => {
  const t = (shape: number[]) => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
  const C = 768;
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {
    "wte.weight": t([50, C]),
    "wpe.weight": t([8, C]),
    "ln_f.weight": t([C]),
    "ln_f.bias": t([C]),
  };
  for (const l of [0, 1]) tensors[`h.${l}.ln_1.weight`] = t([C]);
  const src = await openWeights(encodeSafetensors(tensors));
  src.close();
  assert.deepEqual(
    [src.config.vocab_size, src.config.context_length, src.config.emb_dim, src.config.n_heads, src.config.n_layers],
    [50, 8, 768, 12, 2],
  );
});
