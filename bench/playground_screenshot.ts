/**
 * Writes docs/playground.png: the playground page in headless Chromium after a sampled
 * generation with the seed model.
 *
 *   deno run -A bench/playground_screenshot.ts [docs/playground.png]
 *
 * @module
 */

import { GPT_CONFIG_124M, GPTModel, serve } from "../mod.ts";
import { Browser } from "../tests/_browser.ts";
import { generateIn, openPlayground } from "../tests/playground_test.ts";

const out = Deno.args[0] ?? "docs/playground.png";
using model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123 });
const server = await serve(model, { port: 0 });
const browser = await Browser.launch();
try {
  await openPlayground(browser, server.url);
  await generateIn(browser, { prompt: "Every effort moves you", max_tokens: 12, temperature: 0.8, top_k: 40, seed: 7 });
  await browser.eval("document.querySelectorAll('#out .tok')[3].click()");
  await Deno.writeFile(out, await browser.screenshot());
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  await server.shutdown();
}
