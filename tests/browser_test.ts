// The web build in headless Chromium (Dawn on SwiftShader), served by a plain static server: the
// playground runs the seed example in the page; a seeded sample and its top-5 probabilities equal
// Deno's; the PyTorch fixtures' logits; GPT-2 from a (stand-in) hub into Cache Storage, then offline.
import assert from "node:assert/strict";
import { GPT_CONFIG_124M } from "../src/weights/config.ts";
import { GPTModel } from "../src/model/model.ts";
import { Batcher } from "../src/model/batcher.ts";
import { encode } from "../src/text/tokenizer.ts";
import { build } from "../scripts/build.ts";
import { assertClose, f32File, fixture, TESTDATA } from "./_helpers.ts";
import { serveStatic } from "./_static.ts";
import { startHub } from "./_hub.ts";
import { Browser } from "./_browser.ts";

const SEED_TEXT = "Hello, I am Featureiman Byeswickattribute argue";
const SAMPLING = { maxNewTokens: 5, temperature: 0.8, topK: 40, seed: 5, logprobs: true };

Deno.test("Chromium: the playground runs the seed example in the page; sampled ids, top-5 probabilities and fixture logits match", async () => {
  const dir = await Deno.makeTempDir({ prefix: "gpt-webgpu-web-" });
  await build(dir);
  for (const f of ["tiny_book.safetensors", "tiny_hf_gpt2/model.safetensors", "tiny_hf_gpt2/config.json"]) {
    await Deno.mkdir(`${dir}/${f.split("/").slice(0, -1).join("/")}`, { recursive: true });
    await Deno.copyFile(`${TESTDATA}${f}`, `${dir}/${f}`);
  }
  const server = serveStatic(dir);
  const hub = startHub();
  const browser = await Browser.launch();
  try {
    // a static server has no /v1/models: the page runs the model itself
    await browser.open(`${server.url}/`);
    await browser.waitFor("document.getElementById('mode').value === 'page'", 10_000);
    await browser.eval(`(() => {
      const set = (id, v) => { document.getElementById(id).value = v; };
      set("prompt", "Hello, I am"); set("max_tokens", 6); set("temperature", 0);
      document.getElementById("go").click();
    })()`);
    await browser.waitFor("document.body.dataset.done", 240_000);
    const status = await browser.eval<string>("document.getElementById('status').textContent");
    assert.equal(await browser.eval("document.body.dataset.done"), "1", status);
    assert.equal(await browser.eval("document.getElementById('out').textContent"), SEED_TEXT);
    assert.match(status, /6 tokens in [\d.]+ s \([\d.]+ tokens\/s\)/);
    assert.match(await browser.eval<string>("document.getElementById('adapter').textContent"), /swiftshader/i);
    assert.equal(await browser.eval("document.querySelectorAll('#cands .card').length"), 6);
    assert.ok(server.log.includes("GET /init_worker.js"), "the parameters were drawn in the build's module worker");

    // the same seeded sample, with its top-5 log-probabilities, as Deno's on the same model
    const page = await browser.eval<{ ids: number[]; lp: [number, number][][] }>(`(async () => {
      const L = await import("./mod.js");
      const model = await L.GPTModel.create(L.GPT_CONFIG_124M, { seed: 123 });
      const b = new L.Batcher(model, { maxBatch: 1 });
      const r = await b.add(L.encode("Every effort moves you"), ${JSON.stringify(SAMPLING)}).result;
      await b.close(); model.destroy();
      return { ids: r.ids, lp: r.logprobs.map((t) => t.top.map((c) => [c.id, c.logprob])) };
    })()`);
    {
      using model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123 });
      const b = new Batcher(model, { maxBatch: 1 });
      const r = await b.add(encode("Every effort moves you"), SAMPLING).result;
      await b.close();
      assert.deepEqual(page.ids, r.ids);
      const want = r.logprobs!.map((t) => t.top.map((c) => [c.id, c.logprob]));
      assert.deepEqual(page.lp.map((t) => t.map((c) => c[0])), want.map((t) => t.map((c) => c[0])));
      assertClose(page.lp.flat().map((c) => Math.exp(c[1])), want.flat().map((c) => Math.exp(c[1])), 1e-5);
    }

    // the PyTorch fixtures, by URL (a string is a URL in a page)
    for (
      const [name, path] of [["tiny_book", "tiny_book.safetensors"], ["tiny_hf_gpt2", "tiny_hf_gpt2/model.safetensors"]]
    ) {
      const ids = fixture<{ input_ids: number[][] }>(`${name}.json`).input_ids;
      const logits = await browser.eval<number[]>(`(async () => {
        const L = await import("./mod.js");
        const model = await L.GPTModel.load(${JSON.stringify(path)});
        const out = Array.from(await model.forward(${JSON.stringify(ids)}));
        model.destroy();
        return out;
      })()`);
      assertClose(logits, f32File(`${name}.logits.f32`), 1e-4, 1e-4, `${name} logits in Chromium`);
    }

    // from the hub into Cache Storage, with progress; then again with no request at all
    const hubRun = (offline: boolean) =>
      browser.eval<{ vocab: number; events: number; error?: string }>(`(async () => {
        const L = await import("./mod.js");
        let events = 0;
        try {
          const model = await L.GPTModel.fromPretrained("owner/tiny", {
            endpoint: ${JSON.stringify(hub.url)}, offline: ${offline}, onDownload: () => events++,
          });
          const vocab = model.config.vocab_size;
          model.destroy();
          return { vocab, events };
        } catch (e) { return { error: e.message, vocab: 0, events }; }
      })()`);
    const first = await hubRun(false);
    assert.equal(first.error, undefined, first.error);
    assert.equal(first.vocab, 101);
    assert.ok(first.events > 0);
    const asked = hub.requests.length;
    const second = await hubRun(true);
    assert.deepEqual([second.vocab, second.events, hub.requests.length], [101, 0, asked]);
  } finally {
    await browser.close();
    await hub.close();
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
