// The playground page in a real browser (headless Chromium): type a prompt, generate, and check
// the streamed text and each token's top-5 bars against the API.
import assert from "node:assert/strict";
import { GPT_CONFIG_124M } from "../src/weights/config.ts";
import { GPTModel } from "../src/model/model.ts";
import { serve } from "../src/serve/server.ts";
import { build } from "../scripts/build.ts";
import { Browser } from "./_browser.ts";

/** Opens the playground and waits until it has asked the server for the model's name. */
export async function openPlayground(browser: Browser, url: string): Promise<void> {
  await browser.open(`${url}/`);
  await browser.waitFor("document.getElementById('model').textContent === 'gpt2'", 10_000);
}

/** Fills the form and presses Generate; resolves when the page says it is done. */
export async function generateIn(browser: Browser, o: Record<string, string | number>): Promise<void> {
  const sets = Object.entries(o).map(([id, v]) =>
    `document.getElementById(${JSON.stringify(id)}).value = ${JSON.stringify(String(v))};`
  );
  await browser.eval(`${sets.join("\n")} delete document.body.dataset.done; document.getElementById("go").click();`);
  await browser.waitFor("document.body.dataset.done", 120_000);
}

Deno.test("playground: headless Chromium generates the seed example and shows each token's top 5 as bars", async () => {
  using model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123 });
  const server = await serve(model, { port: 0 });
  const browser = await Browser.launch();
  try {
    await openPlayground(browser, server.url);
    await generateIn(browser, { prompt: "Hello, I am", max_tokens: 6, temperature: 0, seed: "" });
    assert.equal(
      await browser.eval("document.body.dataset.done"),
      "1",
      await browser.eval("document.getElementById('status').textContent"),
    );
    const text = await browser.eval<string>("document.getElementById('out').textContent");
    assert.equal(text, "Hello, I am Featureiman Byeswickattribute argue");
    const tokens = await browser.eval<string[]>(
      "[...document.querySelectorAll('#out .tok')].map((e) => e.textContent)",
    );
    assert.deepEqual(tokens, [" Feature", "iman", " Bye", "swick", "attribute", " argue"]);
    // the bars: five per token, widths from the probabilities, the chosen (greedy: the first) marked
    const cards = await browser.eval<{ chosen: string; bars: { t: string; p: number; w: number }[] }[]>(`
      [...document.querySelectorAll('.card')].map((card) => ({
        chosen: card.querySelector('.cand.chosen code')?.textContent,
        bars: [...card.querySelectorAll('.cand')].map((c) => ({
          t: JSON.parse(c.querySelector('code').textContent),
          p: Number(c.querySelector('.bar').dataset.p),
          w: c.querySelector('.bar').getBoundingClientRect().width / c.querySelector('.track').getBoundingClientRect().width,
        })),
      }))`);
    assert.equal(cards.length, 6);
    const api = await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt2", prompt: "Hello, I am", max_tokens: 6, temperature: 0, logprobs: 5 }),
    }).then((r) => r.json());
    const top = api.choices[0].logprobs.top_logprobs as Record<string, number>[];
    cards.forEach((card, i) => {
      assert.equal(card.bars.length, 5);
      assert.equal(JSON.parse(card.chosen), tokens[i]);
      assert.equal(card.bars[0].t, tokens[i], "greedy: the chosen token has the longest bar");
      for (const b of card.bars) {
        assert.ok(Math.abs(b.p - Math.exp(top[i][b.t])) < 1e-9, `token ${i} ${JSON.stringify(b.t)}`);
        const rel = b.p / card.bars[0].p;
        assert.ok(Math.abs(b.w - Math.max(0.01, rel)) < 0.01, `bar width ${b.w} for p ${b.p}`);
      }
      for (let k = 1; k < 5; k++) assert.ok(card.bars[k].p <= card.bars[k - 1].p);
    });
    const png = await browser.screenshot();
    assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]);
    // an error from the API shows in the page
    await generateIn(browser, { prompt: "Hello", max_tokens: 5000 });
    assert.equal(await browser.eval("document.body.dataset.done"), "error");
    assert.match(await browser.eval<string>("document.getElementById('status').textContent"), /max_tokens/);
    // the web build beside the source, for the in-page mode
    await build(new URL("../dist", import.meta.url).pathname);
    for (const f of ["mod.js", "init_worker.js"]) {
      const r = await fetch(`${server.url}/${f}`);
      assert.equal(r.status, 200);
      assert.match(r.headers.get("content-type") ?? "", /^text\/javascript/);
      assert.ok((await r.text()).length > 1000);
    }
  } finally {
    await browser.close();
    await server.shutdown();
  }
});
