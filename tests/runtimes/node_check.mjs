// Run by tests/node_test.ts under Node: the web build (dist/mod.js) on npm:webgpu (Dawn), without
// touching globals. Writes its results as JSON for the test to compare with Deno's.
//   node node_check.mjs DIST_MOD_JS WEBGPU_INDEX_JS WEIGHTS_URL IDS_JSON SAMPLING_JSON OUT_FILE HUB_URL CACHE_DIR
import { writeFileSync } from "node:fs";
const [, , dist, webgpu, weightsUrl, idsJson, samplingJson, outFile, hubUrl, cacheDir] = process.argv;
const imported = Object.keys(globalThis);
const L = await import(dist);
const { create } = await import(webgpu);
const added = Object.keys(globalThis).filter((k) => !imported.includes(k));
const gpu = create([]);
const out = { added, node: process.version, hasFloat16Array: typeof globalThis.Float16Array === "function" };
try {
  const seed = await L.GPTModel.create(L.GPT_CONFIG_124M, { seed: 123, gpu });
  out.adapter = seed.adapter;
  out.seedIds = (await L.generateTextSimple(seed, [L.encode("Hello, I am")], 6, 1024))[0];
  seed.destroy();
  const ids = JSON.parse(idsJson);
  const sampling = JSON.parse(samplingJson);
  for (const dtype of ["f32", "f16", "q8"]) {
    const model = await L.GPTModel.load(new URL(weightsUrl), { gpu, dtype });
    out[dtype] = {
      logits: Array.from(await model.forward(ids)),
      greedy: await L.generate(model, ids, { maxNewTokens: 8 }),
      sampled: await L.generate(model, ids, sampling),
    };
    model.destroy();
  }
  // GPT-2 by name from a hub into a Hugging Face cache folder
  let events = 0;
  const hub = await L.GPTModel.fromPretrained("owner/tiny", {
    endpoint: hubUrl,
    cacheDir,
    gpu,
    onDownload: () => events++,
  });
  out.hub = { events, logits: Array.from(await hub.forward(ids)) };
  hub.destroy();
  await L.releaseGpu(gpu);
} catch (e) {
  out.error = String(e?.stack ?? e);
}
writeFileSync(outFile, JSON.stringify(out));
process.exit(0); // dawn.node keeps the process alive
