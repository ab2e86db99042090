// One side of bench/runtimes.ts, the same code in Deno, Node and a page: make the seed-123 124M
// model (f32), warm it, then on each call decode 64 tokens greedily, time a prefill (the loss of
// 256 tokens: GPU-bound, one readback) and a 16-byte readback.
// `L` is the library (mod.ts or the web build), `gpu` a GPU or undefined for navigator.gpu.

export async function setup(L, gpu) {
  const model = await L.GPTModel.create(L.GPT_CONFIG_124M, { seed: 123, ...(gpu ? { gpu } : {}) });
  const prompt = [L.encode("Every effort moves you")];
  await L.generate(model, prompt, { maxNewTokens: 8 });
  const text = Array.from({ length: 257 }, (_, i) => (i * 7919) % 50000);
  await model.loss([text.slice(0, 256)], [text.slice(1)]);
  // a second device on the same adapter, for the readback probe
  const device = await (await (gpu ?? navigator.gpu).requestAdapter()).requestDevice();
  return { L, model, prompt, device, text };
}

async function readbackMs(device) {
  const src = device.createBuffer({ size: 16, usage: 0x80 | 0x04 }); // STORAGE | COPY_SRC
  const dst = device.createBuffer({ size: 16, usage: 0x01 | 0x08 }); // MAP_READ | COPY_DST
  const times = [];
  for (let i = 0; i < 20; i++) {
    const t = performance.now();
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(src, 0, dst, 0, 16);
    device.queue.submit([enc.finish()]);
    await dst.mapAsync(1);
    dst.unmap();
    times.push(performance.now() - t);
  }
  src.destroy();
  dst.destroy();
  return times.sort((a, b) => a - b)[10];
}

export async function round(s) {
  const t = performance.now();
  const out = await s.L.generate(s.model, s.prompt, { maxNewTokens: 64 });
  const ms = performance.now() - t;
  const t2 = performance.now();
  await s.model.loss([s.text.slice(0, 256)], [s.text.slice(1)]);
  const prefillMs = performance.now() - t2;
  return { ms, tokens: out[0].length - s.prompt[0].length, prefillMs, readbackMs: await readbackMs(s.device) };
}
