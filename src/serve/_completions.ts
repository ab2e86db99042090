/**
 * OpenAI's completions API, the response side: each choice of a request runs as one batcher
 * request; its ids become text (whole UTF-8 characters only), stop strings cut it, and the
 * choices come back as one JSON object or as server-sent events ending with `data: [DONE]`, in
 * the completions shape or the chat shape.
 *
 * @module
 */

import type { ServingBackend } from "./serving_backend.ts";
import { BatchQueueFullError } from "../model/batcher.ts";
import { decode, END_OF_TEXT } from "../text/tokenizer.ts";
import { ApiError, type CompletionRequest, type Logprobs } from "./_openai_request.ts";
import { chatChoice, chatChunk } from "./_chat.ts";
import { Choice, echoLogprobs } from "./_choice.ts";
import type { FinishedRequest } from "./_metrics.ts";

/** Why a completion's choices were cancelled. */
export type CancelReason = "client" | "shutdown";

/** A request in flight: its choices on the batcher. */
export class Completion {
  readonly id: string;
  readonly created = Math.floor(Date.now() / 1000);
  /** When it was accepted (`performance.now()`). */
  readonly startedAt = performance.now();
  /** Settles when every choice has ended and its tokens are counted (however the answer went). */
  readonly done: Promise<void>;
  #ended!: () => void;
  readonly choices: Choice[] = [];
  readonly r: CompletionRequest;
  #backend: ServingBackend;
  #stop = new AbortController();
  #prompts = new Map<number, Promise<Logprobs>>();

  /**
   * Queues every choice, or none.
   *
   * @throws {ApiError} 400 when the choices can never fit the server; 429 when its queue is full now.
   */
  constructor(backend: ServingBackend, r: CompletionRequest) {
    this.done = new Promise<void>((res) => this.#ended = res);
    this.r = r;
    this.id = `${r.chat ? "chatcmpl" : "cmpl"}-${crypto.randomUUID().replaceAll("-", "")}`;
    this.#backend = backend;
    const eosId = backend.config.vocab_size === 50257 ? END_OF_TEXT : undefined;
    const count = r.prompts.length * r.n;
    if (count > backend.capacity) {
      throw new ApiError(
        400,
        `This request asks for ${count} choices (prompts times n), and this server holds at most ${backend.capacity} requests at once; ask for fewer`,
        { param: "n" },
      );
    }
    if (count > backend.room) throw queueFull();
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
      this.cancel("client");
      if (e instanceof BatchQueueFullError) throw queueFull();
      throw e;
    }
  }

  /** Why it was cancelled, if it was. */
  get cancelled(): CancelReason | undefined {
    return this.#stop.signal.aborted ? this.#stop.signal.reason as CancelReason : undefined;
  }

  /** Cancels every choice: the client went away, or the server is stopping. */
  cancel(reason: CancelReason): void {
    if (!this.#stop.signal.aborted) this.#stop.abort(reason);
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

  /** What the metrics count of it, once it has ended. */
  finished(): FinishedRequest {
    return {
      startedAt: this.startedAt,
      promptTokens: this.r.prompts.reduce((a, p) => a + p.length, 0),
      cachedTokens: this.#cachedTokens(),
      choices: this.choices.map((c) => ({ times: c.times, finish: c.finish ?? "cancelled" })),
    };
  }

  /** Runs every choice to its end; then {@linkcode Completion.done} settles. */
  async #driveAll(onChunk?: (c: Choice) => void, onEnd?: (c: Choice) => void): Promise<void> {
    try {
      await Promise.all(this.choices.map((c) => this.#drive(c, () => onChunk?.(c)).then(() => onEnd?.(c))));
    } finally {
      this.#ended();
    }
  }

  #usage() {
    const prompt = this.r.prompts.reduce((a, p) => a + p.length, 0);
    const completion = this.choices.reduce((a, c) => a + c.req.generated, 0);
    return {
      prompt_tokens: prompt,
      completion_tokens: completion,
      total_tokens: prompt + completion,
      prompt_tokens_details: { cached_tokens: this.#cachedTokens() },
    };
  }

  /** Prompt tokens the prompt cache gave (each prompt counted once, by its choice that got most). */
  #cachedTokens(): number {
    let sum = 0;
    for (let p = 0; p < this.r.prompts.length; p++) {
      sum += Math.max(0, ...this.choices.slice(p * this.r.n, (p + 1) * this.r.n).map((c) => c.req.cachedTokens));
    }
    return sum;
  }

  /** The prompt's log-probabilities for `echo`, computed once per prompt however many choices share it. */
  #echoLogprobs(c: Choice): Promise<Logprobs> | undefined {
    if (!this.r.echo || this.r.logprobs === null) return undefined;
    const p = Math.floor(c.index / this.r.n);
    let got = this.#prompts.get(p);
    if (!got) {
      const ids = this.r.prompts[p];
      got = this.#backend.promptLogprobs(ids, this.r.logprobs, this.#stop.signal).then((lp) => echoLogprobs(ids, lp));
      this.#prompts.set(p, got);
    }
    return got;
  }

  /** The error for choices cut short by a shutdown. */
  #cutShort(): ApiError {
    const made = this.choices.reduce((a, c) => a + c.req.generated, 0);
    return new ApiError(
      503,
      `The server is shutting down and cut this answer short (${made} tokens made); retry it on another server`,
      { code: "shutting_down" },
    );
  }

  /**
   * The whole response, once every choice ends.
   *
   * @throws {ApiError} 503 when the server stopped before every choice ended.
   */
  async json(): Promise<Record<string, unknown>> {
    await this.#driveAll();
    if (this.choices.some((c) => c.cut)) throw this.#cutShort();
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
      choices.push(
        this.r.chat
          ? chatChoice(c.index, c.text, logprobs, c.finish)
          : { text: c.prefix + c.text, index: c.index, logprobs, finish_reason: c.finish },
      );
    }
    if (this.cancelled) throw this.#cutShort();
    return { ...this.#head(false), choices, usage: this.#usage() };
  }

  #head(stream: boolean) {
    const object = this.r.chat ? (stream ? "chat.completion.chunk" : "chat.completion") : "text_completion";
    return { id: this.id, object, created: this.created, model: this.r.model };
  }

  /** One event's choice: completion text, or a chat delta (the first of each choice names the role). */
  #piece(c: Choice, text: string, lp: Logprobs | null, finish: string | null) {
    if (!this.r.chat) return { text, index: c.index, logprobs: lp, finish_reason: finish };
    return chatChunk(c.index, text, lp, finish);
  }

  /** The events of the response, in order; the promise rejects when the answer cannot be whole. */
  async #events(send: (o: unknown) => void): Promise<void> {
    const flush = (c: Choice, last: boolean) => {
      if (c.cut) return;
      const text = c.ready();
      const lp = this.r.logprobs === null ? null : c.logprobs(c.prefix.length, this.r.logprobs);
      if (text || (lp && lp.tokens.length > 0) || last) {
        send({ ...this.#head(true), choices: [this.#piece(c, text, lp, last ? c.finish : null)] });
      }
    };
    if (this.r.chat) {
      for (const c of this.choices) {
        send({
          ...this.#head(true),
          choices: [{ index: c.index, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }],
        });
      }
    }
    for (const c of this.choices) {
      if (!c.prefix) continue;
      const lp = await this.#echoLogprobs(c);
      send({
        ...this.#head(true),
        choices: [{ text: c.prefix, index: c.index, logprobs: lp ?? null, finish_reason: null }],
      });
    }
    await this.#driveAll((c) => flush(c, false), (c) => flush(c, true));
    const cut = this.choices.some((c) => c.cut);
    // usage counts what was made, even of an answer cut short
    if (this.r.includeUsage) send({ ...this.#head(true), choices: [], usage: this.#usage() });
    if (cut) throw this.#cutShort();
    send("[DONE]");
  }

  /**
   * The response as server-sent events ending with `data: [DONE]`; an answer that cannot be whole
   * (the server stopped, the model failed) ends with an `error` event instead. Cancelling the
   * stream cancels the choices.
   *
   * @param onError Told of a failure that is not the request's fault (the event says only that it failed).
   */
  stream(onError?: (e: unknown) => void): ReadableStream<Uint8Array> {
    const enc = new TextEncoder();
    let wake: (() => void) | undefined;
    const events: string[] = [];
    const send = (o: unknown) => {
      events.push(`data: ${typeof o === "string" ? o : JSON.stringify(o)}\n\n`);
      wake?.();
    };
    let finished = false;
    this.#events(send).catch((e) => {
      if (!(e instanceof ApiError)) onError?.(e);
      send(errorBody(e));
    }).finally(() => {
      finished = true;
      this.#ended(); // also when it failed before the choices ran
      wake?.();
    });
    return new ReadableStream<Uint8Array>({
      pull: async (ctl) => {
        while (events.length === 0 && !finished) await new Promise<void>((r) => wake = r);
        if (events.length > 0) ctl.enqueue(enc.encode(events.splice(0).join("")));
        else ctl.close();
      },
      cancel: () => this.cancel("client"),
    });
  }
}

function queueFull(): ApiError {
  return new ApiError(429, "The server is busy: its queue is full; retry in a few seconds", {
    type: "rate_limit_error",
    code: "queue_full",
    headers: { "retry-after": "2" },
  });
}

/** An error as the API's body: an {@linkcode ApiError} as it is, anything else as a generic server error. */
export function errorBody(e: unknown): { error: Record<string, unknown> } {
  if (e instanceof ApiError) return { error: { message: e.message, type: e.type, param: e.param, code: e.code } };
  return {
    error: {
      message: "The server failed to make this answer; its log has the details",
      type: "server_error",
      param: null,
      code: null,
    },
  };
}
