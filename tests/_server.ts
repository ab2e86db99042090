// What the server tests share: a small model with GPT-2's vocabulary (fast, and its text goes
// through the real tokenizer) and the official client pointed at a server, with no retries.
import assert from "node:assert/strict";
import OpenAI from "openai";

/** A small model with GPT-2's vocabulary. */
export const SMALL = {
  vocab_size: 50257,
  context_length: 64,
  emb_dim: 64,
  n_heads: 4,
  n_layers: 2,
  drop_rate: 0,
  qkv_bias: true,
};

/** The official client for a server's URL: no retries, two minutes a request. */
export function client(url: string, apiKey = "none"): OpenAI {
  return new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0, timeout: 120_000 });
}

const MOD = new URL("../mod.ts", import.meta.url).pathname;

/** A real `mod.ts serve` on a free loopback port; its stderr is collected. */
export async function startServe(...extra: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MOD, "serve", "--port", "0", ...extra],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const errDone = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (s) => void (stderr += s) }),
  );
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let first = "";
  while (!first.includes("\n")) {
    const { value, done } = await lines.read();
    if (done) break;
    first += value;
  }
  const url = /on (http:\/\/127\.0\.0\.1:(\d+))/.exec(first);
  assert.ok(url, `the address line: ${first} ${stderr}`);
  return {
    child,
    url: url[1],
    port: Number(url[2]),
    /** Waits for the exit; its code, stderr and how long it took from `since`. */
    async exit(since: number) {
      const status = await child.status;
      await errDone.catch(() => {});
      await lines.cancel().catch(() => {});
      return { code: status.code, stderr, ms: Date.now() - since };
    },
    kill() {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
    },
  };
}
