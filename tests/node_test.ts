// The web build in Node 20 with npm:webgpu (Dawn): the seed example's ids, and on the tiny PyTorch
// fixture loaded from a loopback URL, the logits and the greedy and sampled ids of f32, f16 and q8
// weights equal to Deno's. Importing the build adds no global.
import assert from "node:assert/strict";
import { GPTModel } from "../src/model/model.ts";
import { generate } from "../src/model/generate.ts";
import { build } from "../scripts/build.ts";
import { assertClose, fixture, TESTDATA } from "./_helpers.ts";
import { serveStatic } from "./_static.ts";
import { COMMIT, startHub } from "./_hub.ts";
import "webgpu"; // so that Deno has the package in its cache for Node to import

const SEED_IDS = [15496, 11, 314, 716, 27018, 24086, 47843, 30961, 42348, 7267];

/** npm:webgpu's entry in Deno's npm cache. */
async function webgpuEntry(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output();
  const { npmCache } = JSON.parse(new TextDecoder().decode(out.stdout));
  return `${npmCache}/registry.npmjs.org/webgpu/0.6.2/index.js`;
}

Deno.test({
  name:
    "Node 20 runs the web build on npm:webgpu: the seed example, and f32, f16 and q8 logits and ids equal to Deno's",
  // Node is what the README's set-up assumes (Deno comes from its npm); a machine without it skips this
  ignore: !(await new Deno.Command("node", { args: ["--version"], stdout: "null" }).output().then((o) =>
    o.success, () =>
    false)),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "gpt-webgpu-dist-" });
    const server = serveStatic(TESTDATA);
    const hub = startHub();
    try {
      await build(dir);
      const ids = fixture<{ input_ids: number[][] }>("tiny_book.json").input_ids;
      const sampling = { maxNewTokens: 10, temperature: 0.9, topK: 30, topP: 0.95, seed: 11 };
      const node = await new Deno.Command("node", {
        args: [
          new URL("./runtimes/node_check.mjs", import.meta.url).pathname,
          `${dir}/mod.js`,
          await webgpuEntry(),
          `${server.url}/tiny_book.safetensors`,
          JSON.stringify(ids),
          JSON.stringify(sampling),
          `${dir}/out.json`,
          hub.url,
          `${dir}/hf-cache`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = await Deno.readTextFile(`${dir}/out.json`).catch(() =>
        ""
      );
      assert.ok(
        text.startsWith("{"),
        `node exited with ${node.code}: ${new TextDecoder().decode(node.stderr).slice(-2000)}`,
      );
      const r = JSON.parse(text);
      assert.equal(r.error, undefined, r.error);
      assert.deepEqual(r.added, [], "importing the build added globals");
      // Node 20 has no Float16Array: f16 and q8 go through the library's own half converter
      if (r.node.startsWith("v20.")) assert.equal(r.hasFloat16Array, false);
      assert.deepEqual(r.seedIds, SEED_IDS);
      for (const dtype of ["f32", "f16", "q8"] as const) {
        using model = await GPTModel.load(`${TESTDATA}tiny_book.safetensors`, { dtype });
        assertClose(r[dtype].logits, await model.forward(ids), 1e-5, 1e-5, `${dtype} logits`);
        assert.deepEqual(r[dtype].greedy, await generate(model, ids, { maxNewTokens: 8 }), `${dtype} greedy`);
        assert.deepEqual(r[dtype].sampled, await generate(model, ids, sampling), `${dtype} sampled`);
      }
      assert.ok(server.log.some((l) => /bytes=/.test(l)), "Node read the weights with Range requests");
      // Node's download is in the Python-compatible layout: Deno loads it offline, with the same logits
      assert.ok(r.hub.events > 0);
      const pointer = `${dir}/hf-cache/models--owner--tiny/snapshots/${COMMIT}/model.safetensors`;
      assert.ok((await Deno.lstat(pointer)).isSymlink);
      assert.match(await Deno.readLink(pointer), /^\.\.\/\.\.\/blobs\/[0-9a-f]{64}$/);
      using cached = await GPTModel.fromPretrained("owner/tiny", { cacheDir: `${dir}/hf-cache`, offline: true });
      assertClose(r.hub.logits, await cached.forward(ids), 1e-5, 1e-5, "hub logits");
    } finally {
      await hub.close();
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
