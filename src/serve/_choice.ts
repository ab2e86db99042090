/**
 * One choice of a completion: its ids become text (whole UTF-8 characters only), stop strings cut
 * it, and what has not been sent yet is held back while a stop string may still claim it.
 *
 * @module
 */

import type { BatchRequest, TokenLogprobs } from "../model/batcher.ts";
import { decode, TextStreamer } from "../text/tokenizer.ts";
import type { Logprobs } from "./_openai_request.ts";
import type { PromptLogprobs } from "./_prompt_logprobs.ts";

/** What one choice has made so far, and what it has sent. */
export class Choice {
  readonly index: number;
  readonly req: BatchRequest;
  text = "";
  sent = 0;
  tokens: { id: number; at: number; lp?: TokenLogprobs; text?: string }[] = [];
  /** When each token arrived (`performance.now()`), for the metrics. */
  times: number[] = [];
  sentTokens = 0;
  finish: "stop" | "length" | null = null;
  /** Ended by a cancel (shutdown, or the client leaving) before its natural end. */
  cut = false;
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
    const now = performance.now();
    ids.forEach((id, i) => {
      this.times.push(now);
      this.tokens.push({ id, at: this.text.length, lp: lps?.[i] });
      this.text += this.#streamer.push([id]);
    });
    const cut = Math.min(...this.#stop.map((s) => this.text.indexOf(s, from)).filter((i) => i >= 0));
    if (Number.isFinite(cut)) {
      this.text = this.text.slice(0, cut);
      this.tokens = this.tokens.filter((t) => t.at < cut);
      // the token the stop string begins in is reported with its text up to the cut
      const last = this.tokens.at(-1);
      if (last && last.at + decode([last.id]).length > cut) last.text = decode([last.id]).slice(0, cut - last.at);
      this.finish = "stop";
      this.req.cancel();
    }
  }

  /** The request ended: its reason, and the bytes the streamer held. A cancel leaves `finish` null. */
  end(reason: "stop" | "length" | "cancelled"): void {
    if (this.finish || this.cut) return;
    this.text += this.#streamer.flush();
    if (reason === "cancelled") this.cut = true;
    else this.finish = reason;
  }

  /** Text not sent yet that no stop string can still claim. */
  ready(): string {
    let end = this.text.length;
    if (!this.finish && !this.cut) {
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
      this.sentTokens < this.tokens.length &&
      (this.finish !== null || this.cut || this.tokens[this.sentTokens].at < this.sent)
    ) {
      const t = this.tokens[this.sentTokens++];
      lp.tokens.push(t.text ?? decode([t.id]));
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

/**
 * OpenAI's shape of a prompt's log-probabilities (the first token has none).
 *
 * @param ids The prompt.
 * @param p Its log-probabilities.
 * @returns The completions shape.
 */
export function echoLogprobs(ids: number[], p: PromptLogprobs): Logprobs {
  const lp: Logprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  const streamer = new TextStreamer();
  let at = 0;
  ids.forEach((id, t) => {
    lp.tokens.push(decode([id]));
    lp.text_offset.push(at);
    at += streamer.push([id]).length;
    lp.token_logprobs.push(t === 0 ? null : p.logprobs[t - 1]);
    lp.top_logprobs.push(t === 0 ? null : Object.fromEntries(p.top[t - 1].map((x) => [decode([x.id]), x.logprob])));
  });
  return lp;
}
