/**
 * Continuous batching, measured through the server as users run it (`mod.ts serve` in its own
 * process, seed model, greedy, streamed requests of 24 new tokens):
 * - 8 requests at once against the same 8 one after another, alternating, and the ratio of
 *   aggregate tokens per second (the target is at least 3x on the 2-core CPU machine);
 * - time to first token and tokens per second per stream as the batch grows (1, 2, 4, 8, 16);
 * - how late `/health` answers while the batch decodes (polled every 50 ms).
 *
 *   deno run -A bench/serve_batching.ts [--dtype f32] [--rounds 2] [--tokens 24] [--mod PATH]
 *
 * `--mod` serves another checkout's `mod.ts` (to compare commits in separate runs).
 *
 * @module
 */

import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    dtype: { type: "string", default: "f32" },
    rounds: { type: "string", default: "2" },
    tokens: { type: "string", default: "24" },
    mod: { type: "string" },
  },
});
const ROUNDS = Number(values.rounds);
const TOKENS = Number(values.tokens);
const PROMPTS = [
  "Hello, I am",
  "Every effort moves you",
  "The quick brown fox jumps over the lazy dog",
  "In the beginning",
  "WebGPU runs compute shaders on",
  "Once upon a time, in a land far away, there lived",
  "GPT-2",
  "The key/value cache keeps",
  "A language model predicts the next token from",
  "Deno",
  "Continuous batching lets requests",
  "The transformer block applies layer normalisation, then",
  "Tokens per second",
  "Attention is all you need",
  "Build a Large Language Model",
  "From scratch",
];

const server = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    values.mod ?? new URL("../mod.ts", import.meta.url).pathname,
    "serve",
    "--port",
    "0",
    "--quiet",
    "--max-batch",
    "16",
    "--dtype",
    values.dtype!,
  ],
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const lines = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
let first = "";
while (!first.includes("\n")) first += (await lines.read()).value ?? "";
const url = /on (http:\S+) /.exec(first)![1];

interface Run {
  text: string;
  ttft: number;
  ms: number;
}

async function request(prompt: string): Promise<Run> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt2", prompt, max_tokens: TOKENS, temperature: 0, stream: true }),
  });
  let text = "";
  let ttft = 0;
  let buf = "";
  for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let at;
    while ((at = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, at);
      buf = buf.slice(at + 2);
      if (!ev.startsWith("data: {")) continue;
      const data = JSON.parse(ev.slice(6));
      if (data.error) throw new Error(data.error.message);
      const piece = data.choices[0]?.text ?? "";
      if (piece && !ttft) ttft = performance.now() - t0;
      text += piece;
    }
  }
  return { text, ttft, ms: performance.now() - t0 };
}

/** Runs the prompts together (or one after another) and polls /health meanwhile. */
async function batch(prompts: string[], together: boolean) {
  const lags: number[] = [];
  let polling = true;
  const poll = (async () => {
    while (polling) {
      const t = performance.now();
      await (await fetch(`${url}/health`)).json();
      lags.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const t0 = performance.now();
  const runs: Run[] = [];
  if (together) runs.push(...await Promise.all(prompts.map(request)));
  else for (const p of prompts) runs.push(await request(p));
  const ms = performance.now() - t0;
  polling = false;
  await poll;
  return { runs, ms, tps: (prompts.length * TOKENS) / (ms / 1000), lags };
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const f = (x: number, d = 1) => x.toFixed(d);

await request("warm up the kernels"); // compiles the pipelines
await batch(PROMPTS.slice(0, 8), true);
console.log(`server: ${first.trim()}; dtype ${values.dtype}; ${TOKENS} new tokens per request, greedy\n`);
console.log("8 requests: one after another (A) against all at once (B), alternating");
const seq: number[] = [];
const con: number[] = [];
let same = true;
let reference: string[] | undefined;
for (let r = 0; r < ROUNDS; r++) {
  for (const together of [false, true]) {
    const b = await batch(PROMPTS.slice(0, 8), together);
    (together ? con : seq).push(b.tps);
    const texts = b.runs.map((x) => x.text);
    reference ??= texts;
    same &&= texts.every((t, i) => t === reference![i]);
    console.log(
      `  round ${r + 1} ${together ? "B at once      " : "A one at a time"}: ${f(b.ms / 1000, 2)} s, ${
        f(b.tps, 2)
      } tokens/s`,
    );
  }
}
const ratios = con.map((c, i) => c / seq[i]);
console.log(
  `  ratio B/A: median ${f(median(ratios), 2)}x (range ${f(Math.min(...ratios), 2)}-${
    f(Math.max(...ratios), 2)
  }); texts identical: ${same}\n`,
);

console.log(
  "| concurrent streams | time to first token (median, ms) | tokens/s per stream (median) | aggregate tokens/s | /health median / max (ms) |",
);
console.log("| --- | --- | --- | --- | --- |");
for (const n of [1, 2, 4, 8, 16]) {
  const b = await batch(PROMPTS.slice(0, n), true);
  const perStream = b.runs.map((x) => (TOKENS - 1) / ((x.ms - x.ttft) / 1000));
  console.log(
    `| ${n} | ${f(median(b.runs.map((x) => x.ttft)), 0)} | ${f(median(perStream), 2)} | ${f(b.tps, 2)} | ${
      f(median(b.lags), 1)
    } / ${f(Math.max(...b.lags), 1)} |`,
  );
}
server.kill("SIGTERM");
await server.status;
await lines.cancel().catch(() => {});
