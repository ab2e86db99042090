/**
 * OpenAI's completions API, the response side: each choice of a request runs as one batcher
 * request; its ids become text (whole UTF-8 characters only), stop strings cut it, and the
 * choices come back as one JSON object or as server-sent events ending with `data: [DONE]`.
 *
 * @module
 */

import type { BatchRequest, TokenLogprobs } from "./batcher.ts";
import type { ServingBackend } from "./_serving.ts";
import { BatchQueueFullError } from "./batcher.ts";
import { decode, END_OF_TEXT, TextStreamer } from "./tokenizer.ts";
import { ApiError, type CompletionRequest } from "./_openai_request.ts";

/** OpenAI's per-choice log-probabilities. */
interface Logprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

/** What one choice has made so far, and what it has sent. */
class Choice {
  readonly index: number;
  readonly req: BatchRequest;
  text = "";
  sent = 0;
  tokens: { id: number; at: number; lp?: TokenLogprobs }[] = [];
  sentTokens = 0;
  finish: "stop" | "length" | null = null;
  #streamer = new TextStreamer();
  #stop: string[];
  #prefix: string;

  constructor(index: number, req: BatchRequest, stop: string[], prefix: string) {
    this.index = index;
    this.req = req;
    this.#stop = stop;
    this.#prefix = prefix;
  }

  /** Takes a chunk of ids; cuts at a stop string (and cancels the rest). */
  push(ids: number[], lps?: TokenLogprobs[]): void {
    if (this.finish) return;
    const from = Math.max(0, this.text.length - Math.max(0, ...this.#stop.map((s) => s.length)) + 1);
    ids.forEach((id, i) => {
      this.tokens.push({ id, at: this.text.length, lp: lps?.[i] });
      this.text += this.#streamer.push([id]);
    });
    const cut = Math.min(...this.#stop.map((s) => this.text.indexOf(s, from)).filter((i) => i >= 0));
    if (Number.isFinite(cut)) {
      this.text = this.text.slice(0, cut);
      this.tokens = this.tokens.filter((t) => t.at < cut);
      this.finish = "stop";
      this.req.cancel();
    }
  }

  /** The request ended: its reason, and the bytes the streamer held. */
  end(reason: "stop" | "length" | "cancelled"): void {
    if (this.finish) return;
    this.text += this.#streamer.flush();
    this.finish = reason === "length" ? "length" : "stop";
  }

  /** Text not sent yet that no stop string can still claim. */
  ready(): string {
    let end = this.text.length;
    if (!this.finish) {
      // hold back the longest tail that begins a stop string
      for (const s of this.#stop) {
        for (let k = Math.min(s.length - 1, this.text.length); k > 0; k--) {
          if (this.text.endsWith(s.slice(0, k))) {
            end = Math.min(end, this.text.length - k);
            break;
          }
        }
      }
    }
    const out = this.text.slice(this.sent, Math.max(this.sent, end));
    this.sent = Math.max(this.sent, end);
    return out;
  }

  /** Log-probabilities (with `n` alternatives) of the tokens whose text has been sent, not reported yet. */
  logprobs(prefixLen: number, n: number): Logprobs {
    const lp: Logprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
    while (
      this.sentTokens < this.tokens.length && (this.finish !== null || this.tokens[this.sentTokens].at < this.sent)
    ) {
      const t = this.tokens[this.sentTokens++];
      lp.tokens.push(decode([t.id]));
      lp.token_logprobs.push(t.lp?.logprob ?? null);
      // cut to n before the object is made: its integer-like keys ("677") would come first
      lp.top_logprobs.push(
        t.lp ? Object.fromEntries(t.lp.top.slice(0, n).map((x) => [decode([x.id]), x.logprob])) : null,
      );
      lp.text_offset.push(prefixLen + t.at);
    }
    return lp;
  }

  get prefix(): string {
    return this.#prefix;
  }
}

/** Log-probabilities of a prompt's tokens (the first has none), for `echo` with `logprobs`. */
async function promptLogprobs(backend: ServingBackend, ids: number[], n: number): Promise<Logprobs> {
  const V = backend.config.vocab_size;
  const logits = await backend.logits(ids);
  const lp: Logprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let at = 0;
  const streamer = new TextStreamer();
  ids.forEach((id, t) => {
    lp.tokens.push(decode([id]));
    lp.text_offset.push(at);
    at += streamer.push([id]).length;
    if (t === 0) {
      lp.token_logprobs.push(null);
      lp.top_logprobs.push(null);
      return;
    }
    const row = logits.subarray((t - 1) * V, t * V);
    let m = -Infinity;
    for (const v of row) m = Math.max(m, v);
    let s = 0;
    for (const v of row) s += Math.exp(v - m);
    const lse = m + Math.log(s);
    lp.token_logprobs.push(row[id] - lse);
    const top = Array.from(row.keys()).sort((a, b) => row[b] - row[a] || a - b).slice(0, n);
    lp.top_logprobs.push(Object.fromEntries(top.map((i) => [decode([i]), row[i] - lse])));
  });
  return lp;
}

/** A request in flight: its choices on the batcher. */
export class Completion {
  readonly id = `cmpl-${crypto.randomUUID().replaceAll("-", "")}`;
  readonly created = Math.floor(Date.now() / 1000);
  readonly choices: Choice[] = [];
  readonly r: CompletionRequest;
  #backend: ServingBackend;

  /**
   * Queues every choice, or none.
   *
   * @throws {ApiError} 429 when the queue is full.
   */
  constructor(backend: ServingBackend, r: CompletionRequest) {
    this.r = r;
    this.#backend = backend;
    const eosId = backend.config.vocab_size === 50257 ? END_OF_TEXT : undefined;
    try {
      r.prompts.forEach((ids, p) => {
        const prefix = r.echo ? (r.promptTexts[p] ?? decode(ids)) : "";
        for (let i = 0; i < r.n; i++) {
          const req = backend.add(ids, {
            maxNewTokens: r.maxTokens,
            temperature: r.temperature,
            topP: r.topP,
            topK: r.topK,
            seed: r.seed,
            eosId,
            logprobs: r.logprobs !== null,
            row: i,
          });
          this.choices.push(new Choice(p * r.n + i, req, r.stop, prefix));
        }
      });
    } catch (e) {
      this.cancel();
      if (e instanceof BatchQueueFullError) {
        throw new ApiError(429, "The server is busy: its queue is full; retry in a few seconds", {
          type: "rate_limit_error",
          code: "queue_full",
          headers: { "retry-after": "2" },
        });
      }
      throw e;
    }
  }

  /** Cancels every choice (the client went away). */
  cancel(): void {
    for (const c of this.choices) c.req.cancel();
  }

  /** Runs one choice to its end, calling `onChunk` after each chunk. */
  async #drive(c: Choice, onChunk: () => void): Promise<void> {
    for await (const chunk of c.req) {
      c.push(chunk.ids, chunk.logprobs);
      onChunk();
    }
    const res = await c.req.result;
    c.end(res.finishReason);
    onChunk();
  }

  #usage() {
    const prompt = this.r.prompts.reduce((a, p) => a + p.length, 0);
    const completion = this.choices.reduce((a, c) => a + c.req.generated, 0);
    return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  }

  async #echoLogprobs(c: Choice): Promise<Logprobs | undefined> {
    if (!this.r.echo || this.r.logprobs === null) return undefined;
    return await promptLogprobs(this.#backend, this.r.prompts[Math.floor(c.index / this.r.n)], this.r.logprobs);
  }

  /** The whole response, once every choice ends. */
  async json(): Promise<Record<string, unknown>> {
    await Promise.all(this.choices.map((c) => this.#drive(c, () => {})));
    const choices = [];
    for (const c of this.choices) {
      c.ready();
      let logprobs: Logprobs | null = null;
      if (this.r.logprobs !== null) {
        const own = c.logprobs(c.prefix.length, this.r.logprobs);
        const echo = await this.#echoLogprobs(c);
        logprobs = echo
          ? {
            tokens: [...echo.tokens, ...own.tokens],
            token_logprobs: [...echo.token_logprobs, ...own.token_logprobs],
            top_logprobs: [...echo.top_logprobs, ...own.top_logprobs],
            text_offset: [...echo.text_offset, ...own.text_offset],
          }
          : own;
      }
      choices.push({ text: c.prefix + c.text, index: c.index, logprobs, finish_reason: c.finish });
    }
    return { ...this.#head(), choices, usage: this.#usage() };
  }

  #head() {
    return { id: this.id, object: "text_completion", created: this.created, model: this.r.model };
  }

  /** The response as server-sent events; cancelling the stream cancels the choices. */
  stream(): ReadableStream<Uint8Array> {
    const enc = new TextEncoder();
    let wake: (() => void) | undefined;
    const events: string[] = [];
    const send = (o: unknown) => {
      events.push(`data: ${typeof o === "string" ? o : JSON.stringify(o)}\n\n`);
      wake?.();
    };
    const flush = (c: Choice, last: boolean) => {
      const text = c.ready();
      const lp = this.r.logprobs === null ? null : c.logprobs(c.prefix.length, this.r.logprobs);
      if (text || (lp && lp.tokens.length > 0) || last) {
        send({
          ...this.#head(),
          choices: [{ text, index: c.index, logprobs: lp, finish_reason: last ? c.finish : null }],
        });
      }
    };
    const done = (async () => {
      for (const c of this.choices) {
        if (!c.prefix) continue;
        const lp = await this.#echoLogprobs(c);
        send({
          ...this.#head(),
          choices: [{ text: c.prefix, index: c.index, logprobs: lp ?? null, finish_reason: null }],
        });
      }
      await Promise.all(this.choices.map((c) => this.#drive(c, () => flush(c, false)).then(() => flush(c, true))));
      if (this.r.includeUsage) send({ ...this.#head(), choices: [], usage: this.#usage() });
      send("[DONE]");
    })();
    let finished = false;
    let failure: unknown;
    done.then(() => finished = true, (e) => {
      failure = e;
      finished = true;
    }).finally(() => wake?.());
    return new ReadableStream<Uint8Array>({
      pull: async (ctl) => {
        while (events.length === 0 && !finished) await new Promise<void>((r) => wake = r);
        if (events.length > 0) ctl.enqueue(enc.encode(events.splice(0).join("")));
        else if (failure) {
          const message = failure instanceof Error ? failure.message : String(failure);
          ctl.enqueue(
            enc.encode(
              `data: ${JSON.stringify({ error: { message, type: "server_error", param: null, code: null } })}\n\n`,
            ),
          );
          ctl.close();
        } else ctl.close();
      },
      cancel: () => this.cancel(),
    });
  }
}
