/**
 * Continuous batching, measured through the server as users run it (`mod.ts serve` in its own
 * process, seed model, greedy, streamed requests of 24 new tokens):
 * - 8 requests at once against the same 8 one after another, alternating, and the ratio of
 *   aggregate tokens per second (the target is at least 3x on the 2-core CPU machine);
 * - time to first token and tokens per second per stream as the batch grows (1, 2, 4, 8, 16);
 * - how late `/health` answers while the batch decodes (polled every 50 ms);
 * - one stream against the command line (`mod.ts --json`), alternating: decode tokens per second;
 * - a chat of 8 turns against a second server started with `--no-prompt-cache`: time to first
 *   token per turn;
 * - lm-eval's multiple-choice pattern (one context, 4 continuations, `echo` + `logprobs`), with and
 *   without the prompt cache;
 * - 8 prompts arriving together, of 8 different lengths (8 prefill steps) against 8 of one length
 *   with as many tokens in all (one step) and 8 of the longest length (one step padded to it):
 *   what one ragged prefill step could save.
 *
 *   deno run -A bench/serve_batching.ts [--dtype f32] [--rounds 2] [--tokens 24] [--mod PATH]
 *     [--only batching|cli|chat|lm-eval|prefill]
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
    only: { type: "string" },
  },
});
const only = (part: string) => values.only === undefined || values.only === part;
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

const MOD = values.mod ?? new URL("../mod.ts", import.meta.url).pathname;

/** `mod.ts serve` in a process of its own; its first line and URL. */
async function startServer(extra: string[] = []) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MOD,
      "serve",
      "--port",
      "0",
      "--quiet",
      "--max-batch",
      "16",
      "--dtype",
      values.dtype!,
      ...extra,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let line = "";
  while (!line.includes("\n")) line += (await reader.read()).value ?? "";
  const stop = async () => {
    child.kill("SIGTERM");
    await child.status;
    await reader.cancel().catch(() => {});
  };
  return { first: line, url: /on (http:\S+) /.exec(line)![1], stop };
}

const main = await startServer();
const { first, url } = main;

interface Run {
  text: string;
  ttft: number;
  ms: number;
}

async function request(prompt: string, tokens = TOKENS, at = url): Promise<Run> {
  const t0 = performance.now();
  const res = await fetch(`${at}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt2", prompt, max_tokens: tokens, temperature: 0, stream: true }),
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
  if (together) runs.push(...await Promise.all(prompts.map((p) => request(p))));
  else for (const p of prompts) runs.push(await request(p));
  const ms = performance.now() - t0;
  polling = false;
  await poll;
  return { runs, ms, tps: (prompts.length * TOKENS) / (ms / 1000), lags };
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const f = (x: number, d = 1) => x.toFixed(d);

await request("warm up the kernels"); // compiles the pipelines
console.log(`server: ${first.trim()}; dtype ${values.dtype}; ${TOKENS} new tokens per request, greedy\n`);
if (only("batching")) await batching();
if (only("cli")) await againstCli();
if (only("prefill")) await prefillShapes();
if (only("chat") || only("lm-eval")) {
  const cold = await startServer(["--no-prompt-cache"]);
  await request("warm up the kernels", TOKENS, cold.url);
  if (only("chat")) await chat(cold.url);
  if (only("lm-eval")) await multipleChoice(cold.url);
  await cold.stop();
}
await main.stop();

async function batching() {
  await batch(PROMPTS.slice(0, 8), true);
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
}

/** One stream through the server against the command line, alternating: decode tokens per second. */
async function againstCli() {
  const N = 64;
  const prompt = "Every effort moves you";
  const cli: number[] = [];
  const srv: number[] = [];
  for (let r = 0; r < ROUNDS + 1; r++) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MOD, "--json", "--dtype", values.dtype!, "--max-new-tokens", String(N), prompt],
      stdout: "piped",
      stderr: "null",
    }).output();
    cli.push(JSON.parse(new TextDecoder().decode(out.stdout)).timings.decode_tokens_per_s);
    const x = await request(prompt, N);
    srv.push((N - 1) / ((x.ms - x.ttft) / 1000));
    console.log(`  round ${r + 1}: command line ${f(cli.at(-1)!, 2)} tokens/s, one stream ${f(srv.at(-1)!, 2)}`);
  }
  const ratios = srv.map((x, i) => x / cli[i]);
  console.log(
    `one stream / command line, ${N} new tokens: median ${f(median(ratios), 2)}x (range ${f(Math.min(...ratios), 2)}-${
      f(Math.max(...ratios), 2)
    }); medians ${f(median(srv), 2)} and ${f(median(cli), 2)} tokens/s\n`,
  );
}

/** Time to the first streamed chat token. */
async function chatTurn(at: string, messages: { role: string; content: string }[]) {
  const t0 = performance.now();
  const res = await fetch(`${at}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt2", messages, max_tokens: 16, temperature: 0, stream: true }),
  });
  let text = "";
  let ttft = 0;
  for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
    for (const ev of chunk.split("\n\n")) {
      if (!ev.startsWith("data: {")) continue;
      const piece = JSON.parse(ev.slice(6)).choices[0]?.delta?.content ?? "";
      if (piece && !ttft) ttft = performance.now() - t0;
      text += piece;
    }
  }
  return { text, ttft: ttft || performance.now() - t0 };
}

/** A chat of 8 turns on both servers, alternating turn by turn: time to first token per turn. */
async function chat(coldUrl: string) {
  const asks = PROMPTS.slice(0, 8).map((p) => `${p} ${PROMPTS[15 - PROMPTS.indexOf(p)]}, and tell me more.`);
  const history = {
    cached: [] as { role: string; content: string }[],
    cold: [] as { role: string; content: string }[],
  };
  console.log("| chat turn | prompt tokens | first token, prompt cache (ms) | without (ms) | ratio |");
  console.log("| --- | --- | --- | --- | --- |");
  for (const [i, ask] of asks.entries()) {
    const row: number[] = [];
    for (const [which, at] of [["cached", url], ["cold", coldUrl]] as const) {
      const h = history[which];
      h.push({ role: "user", content: ask });
      const t = await chatTurn(at, h);
      h.push({ role: "assistant", content: t.text });
      row.push(t.ttft);
    }
    const tokens = await fetch(`${url}/tokenize`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ messages: history.cached.slice(0, -1) }),
    }).then((r) => r.json());
    console.log(`| ${i + 1} | ${tokens.count} | ${f(row[0], 0)} | ${f(row[1], 0)} | ${f(row[0] / row[1], 2)} |`);
  }
  console.log();
}

/** lm-eval's multiple choice: one context, 4 continuations, scored with echo + logprobs, on both servers. */
async function multipleChoice(coldUrl: string) {
  const context = PROMPTS.join(". ");
  const endings = [" yes", " no", " maybe so", " it depends"];
  const time = async (at: string) => {
    const t0 = performance.now();
    const r = await fetch(`${at}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "gpt2",
        prompt: endings.map((e) => context + e),
        echo: true,
        logprobs: 1,
        max_tokens: 1,
        temperature: 0,
      }),
    });
    await r.json();
    return performance.now() - t0;
  };
  const a: number[] = [];
  const b: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    a.push(await time(url));
    b.push(await time(coldUrl));
  }
  console.log(
    `lm-eval multiple choice (4 continuations of one context): ${f(median(a), 0)} ms with the prompt cache, ${
      f(median(b), 0)
    } ms without\n`,
  );
}

/** Time to first token of 8 prompts sent together: 8 lengths against one (as many tokens in all), alternating. */
async function prefillShapes() {
  const lengths = [3, 5, 7, 9, 11, 13, 15, 17]; // 80 tokens, as 8 x 10
  const ttft = async (sizes: number[], round: number) => {
    // fresh ids each time, so that the prompt cache has nothing to give
    const prompts = sizes.map((n, i) =>
      Array.from({ length: n }, (_, k) => (round * 7919 + i * 104729 + k * 31) % 50000)
    );
    const t0 = performance.now();
    const firsts = await Promise.all(prompts.map(async (prompt) => {
      const r = await fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "gpt2", prompt, max_tokens: 1, temperature: 0 }),
      });
      await r.json();
      return performance.now() - t0;
    }));
    return median(firsts);
  };
  const ragged: number[] = [];
  const even: number[] = [];
  const padded: number[] = [];
  for (let r = 0; r < ROUNDS + 1; r++) {
    ragged.push(await ttft(lengths, 3 * r));
    even.push(await ttft(lengths.map(() => 10), 3 * r + 1));
    padded.push(await ttft(lengths.map(() => 17), 3 * r + 2));
  }
  const show = (a: number[]) => `${f(median(a), 0)} ms (${f(Math.min(...a), 0)}-${f(Math.max(...a), 0)})`;
  console.log(
    `8 prompts together, first token (median of each round's medians): 8 lengths ${show(ragged)}, ` +
      `one length of as many tokens ${show(even)}, all of the longest length ${show(padded)}\n`,
  );
}
