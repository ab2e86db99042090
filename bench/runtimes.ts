/**
 * The same decode in Deno, Node (the web build on `npm:webgpu`) and headless Chromium (the web
 * build on its WebGPU): the seed-123 124M model in f32, warm, 64 new tokens greedily, in rounds
 * that alternate the runtimes; with each round a 16-byte readback (copy, submit, `mapAsync`) timed
 * on the same adapter, the wait every decoding step pays once, and a prefill (the loss of 256
 * tokens, bound by the kernels' speed). Prints medians and ranges, and the ratios to Deno.
 * `--dawn FLAG` adds a Node runner with that Dawn toggle (e.g. `enable-dawn-features=disable_robustness`).
 *
 *   deno run -A bench/runtimes.ts [--rounds 5] [--skip chromium] [--skip node] [--dawn FLAG] [--json FILE]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { build } from "../scripts/build.ts";
import { serveStatic } from "../tests/_static.ts";
import { Browser } from "../tests/_browser.ts";
import "webgpu";

interface Round {
  ms: number;
  tokens: number;
  prefillMs: number;
  readbackMs: number;
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "5" },
    skip: { type: "string", multiple: true },
    dawn: { type: "string", multiple: true },
    json: { type: "string" },
  },
});
const HERE = new URL("./runtimes/", import.meta.url).pathname;

/** A runner process: "ready" when warm, one JSON line per "run". */
async function runner(cmd: string, args: string[]): Promise<{ run(): Promise<Round>; close(): Promise<void> }> {
  const child = new Deno.Command(cmd, { args, stdin: "piped", stdout: "piped", stderr: "inherit" }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  const next = async (): Promise<string> => {
    for (;;) {
      const at = buf.indexOf("\n");
      if (at >= 0) {
        const line = buf.slice(0, at);
        buf = buf.slice(at + 1);
        if (line === "ready" || line.startsWith("{")) return line;
        continue; // anything else the runtime prints
      }
      const { value, done } = await lines.read();
      if (done) throw new Error(`${cmd} exited before answering`);
      buf += value;
    }
  };
  await next();
  const stdin = child.stdin.getWriter();
  return {
    async run() {
      await stdin.write(new TextEncoder().encode("run\n"));
      return JSON.parse(await next());
    },
    async close() {
      await stdin.close();
      await child.status;
    },
  };
}

async function webgpuEntry(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output();
  return `${JSON.parse(new TextDecoder().decode(out.stdout)).npmCache}/registry.npmjs.org/webgpu/0.6.2/index.js`;
}

const dir = await Deno.makeTempDir({ prefix: "gpt-webgpu-runtimes-" });
await build(dir);
await Deno.copyFile(`${HERE}decode_round.js`, `${dir}/decode_round.js`);
const skip = new Set(values.skip ?? []);
const runtimes: Record<string, { run(): Promise<Round>; close(): Promise<void> }> = {};
runtimes.deno = await runner(Deno.execPath(), ["run", "-A", `${HERE}deno_runner.ts`]);
const nodeArgs = [`${HERE}node_runner.mjs`, `${dir}/mod.js`, await webgpuEntry()];
if (!skip.has("node")) runtimes.node = await runner("node", nodeArgs);
for (const flag of values.dawn ?? []) runtimes[`node ${flag}`] = await runner("node", [...nodeArgs, flag]);
const server = serveStatic(dir);
let browser: Browser | undefined;
if (!skip.has("chromium")) {
  browser = await Browser.launch();
  await browser.open(`${server.url}/decode_round.js`);
  await browser.eval(`(async () => {
    const { setup, round } = await import("./decode_round.js");
    globalThis.bench = { s: await setup(await import("./mod.js")), round };
  })()`);
  const b = browser;
  runtimes.chromium = { run: () => b.eval<Round>("bench.round(bench.s)"), close: () => b.close() };
}

const results: Record<string, Round[]> = Object.fromEntries(Object.keys(runtimes).map((k) => [k, []]));
const names = Object.keys(runtimes);
for (let r = 0; r < Number(values.rounds); r++) {
  // a different runtime first each round
  for (let i = 0; i < names.length; i++) {
    const name = names[(i + r) % names.length];
    const x = await runtimes[name].run();
    results[name].push(x);
    console.error(
      `round ${r + 1} ${name}: ${(x.tokens / x.ms * 1000).toFixed(2)} tokens/s, prefill ${
        x.prefillMs.toFixed(0)
      } ms, ` +
        `readback ${x.readbackMs.toFixed(2)} ms`,
    );
  }
}
for (const rt of Object.values(runtimes)) await rt.close();
await server.close();
await Deno.remove(dir, { recursive: true });

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const rate = (x: Round) => x.tokens / x.ms * 1000;
const denoRate = median(results.deno.map(rate));
const denoPrefill = median(results.deno.map((x) => x.prefillMs));
console.log("| runtime | decode tokens/s, median | range | vs Deno | prefill 256 (ms) | vs Deno | readback (ms) |");
console.log("|---|---|---|---|---|---|---|");
for (const [name, rs] of Object.entries(results)) {
  const rates = rs.map(rate);
  const m = median(rates);
  console.log(
    `| ${name} | ${m.toFixed(2)} | ${Math.min(...rates).toFixed(2)}–${Math.max(...rates).toFixed(2)} | ${
      (m / denoRate).toFixed(2)
    }x | ${median(rs.map((x) => x.prefillMs)).toFixed(0)} | ${
      (median(rs.map((x) => x.prefillMs)) / denoPrefill).toFixed(2)
    }x | ${median(rs.map((x) => x.readbackMs)).toFixed(2)} |`,
  );
}
if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(results, null, 1));
