/**
 * Continuous batching: requests of any prompt length share the model's decoding steps. Each
 * request takes a slot (a row of a key/value cache of its own workspace) when one is free, runs
 * its prompt in one step, then decodes one token a step beside every other request in flight;
 * it leaves when it ends (`maxNewTokens`, its end token, or a cancel), freeing its slot for the
 * next in the queue. Each row has its own position, cache length and sampling settings, so a
 * request gets the ids it would get alone from {@linkcode generate}, greedy or seeded.
 *
 * @module
 */

import type { GPTModel } from "./model.ts";
import { checkOptions } from "../engine/_options.ts";
import type { Sampling } from "../engine/_plan.ts";
import { checkContext } from "../engine/_context.ts";
import { SlotCache } from "./_slot_cache.ts";
import { runnerOf } from "../engine/_runner_of.ts";
import { checkSampling } from "../engine/_sampling.ts";
import { RaggedEngine, type RaggedRow, type RaggedStep, type TokenLogprobs } from "../engine/ragged.ts";
import {
  type BatchChunk,
  BatchQueueFullError,
  BatchRequest,
  type BatchRequestOptions,
  type BatchResult,
  type FinishReason,
  queueRoom,
} from "../engine/batch_request.ts";
import { MAX_RAGGED_ROWS } from "../../kernels/mod.ts";

export type { BatchChunk, BatchRequestOptions, BatchResult, FinishReason, TokenLogprobs };
export { BatchQueueFullError, BatchRequest };

/** Options for a {@linkcode Batcher}. */
export interface BatcherOptions {
  /** Requests decoding at once, 1 to 64 (default 8); each holds a key/value cache of the whole context. */
  maxBatch?: number;
  /** Requests waiting for a slot (default 64); past it `add` throws {@linkcode BatchQueueFullError}. */
  maxQueue?: number;
  /**
   * Most decoding steps between readbacks (default 8); requests join between them. On CPU adapters,
   * where a step takes long, runs are one step while a request waits or has just joined (so that it
   * starts, and its first token comes back, at once) and up to `chunkSize` otherwise.
   */
  chunkSize?: number;
  /**
   * Reuse the keys and values a free slot still holds (default true): a request whose prompt
   * starts like the tokens of an earlier request in that slot computes only the rest. Results are
   * the same bit for bit; slots are reused least recently used first.
   */
  promptCache?: boolean;
}

const REQUEST_KEYS = [
  "maxNewTokens",
  "temperature",
  "topK",
  "topP",
  "seed",
  "eosId",
  "logprobs",
  "row",
  "signal",
] as const;

/**
 * Serves generation requests on one model with continuous batching.
 *
 * @example
 * ```ts ignore
 * const batcher = new Batcher(model, { maxBatch: 8 });
 * const a = batcher.add(encode("Hello, I am"), { maxNewTokens: 20 });
 * const b = batcher.add(encode("Every effort moves you"), { maxNewTokens: 30, temperature: 0.8, seed: 7 });
 * for await (const chunk of a) console.log(decode(chunk.ids));
 * console.log((await b.result).ids);
 * await batcher.close();
 * ```
 */
export class Batcher {
  /** Requests decoding at once. */
  readonly maxBatch: number;
  /** Requests that may wait. */
  readonly maxQueue: number;
  /** Decoding steps between readbacks. */
  readonly chunkSize: number;
  /** Whether free slots' keys and values are reused. */
  readonly promptCache: boolean;
  #model: GPTModel;
  #cache: SlotCache;
  /** Steps per run while requests wait or join. */
  #busyChunk: number;
  #engine?: RaggedEngine;
  #queue: BatchRequest[] = [];
  #active: BatchRequest[] = [];
  #free: number[];
  #loop?: Promise<void>;
  #running = false;
  #closed = false;
  #steps = 0;

  /**
   * Sets up a batcher; the workspace is allocated with the first request.
   *
   * @param model The model.
   * @param options Sizes.
   */
  constructor(model: GPTModel, options: BatcherOptions = {}) {
    checkOptions(options, ["maxBatch", "maxQueue", "chunkSize", "promptCache"], "create a batcher");
    if (options.promptCache !== undefined && typeof options.promptCache !== "boolean") {
      throw new TypeError(`Cannot create a batcher: promptCache '${options.promptCache}' must be true or false`);
    }
    this.promptCache = options.promptCache ?? true;
    const runner = runnerOf(model);
    const int = (v: unknown, name: string, min: number, max: number, def: number) => {
      if (v === undefined) return def;
      if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
        throw new RangeError(`Cannot create a batcher: ${name} '${v}' must be an integer from ${min} to ${max}`);
      }
      return v;
    };
    this.maxBatch = int(options.maxBatch, "maxBatch", 1, MAX_RAGGED_ROWS, 8);
    this.maxQueue = int(options.maxQueue, "maxQueue", 0, 1e6, 64);
    const cpu = runner.parts.profile.adapter === "cpu";
    this.chunkSize = int(options.chunkSize, "chunkSize", 1, 256, 8);
    this.#busyChunk = cpu ? 1 : this.chunkSize;
    this.#model = model;
    this.#free = Array.from({ length: this.maxBatch }, (_, i) => this.maxBatch - 1 - i);
    this.#cache = new SlotCache(this.maxBatch);
  }

  /** Requests decoding now. */
  get active(): number {
    return this.#active.length;
  }

  /** Requests waiting for a slot. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Requests that {@linkcode Batcher.add} takes now before it throws {@linkcode BatchQueueFullError}. */
  get room(): number {
    return queueRoom(this, this.#active.length + this.#queue.length);
  }

  /** Decoding steps run so far (each shared by every request in flight). */
  get steps(): number {
    return this.#steps;
  }

  /**
   * Queues a request; it starts at the next chunk boundary with a free slot.
   *
   * @param prompt The prompt's token ids (at least one).
   * @param options `maxNewTokens` and the sampling options.
   * @returns The request: iterate it for chunks, or await its `result`.
   * @throws {RangeError} On a bad id or option, or a prompt plus `maxNewTokens` over the context.
   * @throws {BatchQueueFullError} When `maxQueue` requests already wait.
   */
  add(prompt: number[] | Uint32Array, options: BatchRequestOptions): BatchRequest {
    const what = "add a request";
    const sampling = this.#check(options, what);
    const row = options.row ?? 0;
    if (!Number.isInteger(row) || row < 0 || row > 0xffffffff) {
      throw new RangeError(`Cannot ${what}: row '${row}' must be a non-negative integer`);
    }
    return this.#queueRow(this.#ids(prompt, options.maxNewTokens, what), options, sampling, what);
  }

  /**
   * Queues prompts that share their options, prompt `i` drawing as `row: i` (what `generate` does
   * with rows of different lengths): the options are checked once, each prompt once, and all are
   * queued or none.
   *
   * @param prompts The prompts' token ids.
   * @param options `maxNewTokens` and the sampling options, for every prompt.
   * @returns The requests, in order.
   * @throws {RangeError} As {@linkcode Batcher.add} does.
   * @throws {BatchQueueFullError} When the queue cannot take them all now.
   */
  addAll(prompts: (number[] | Uint32Array)[], options: Omit<BatchRequestOptions, "row">): BatchRequest[] {
    const what = "add requests";
    const sampling = this.#check(options, what);
    const rows = prompts.map((p) => this.#ids(p, options.maxNewTokens, what));
    if (rows.length > this.room) {
      throw new BatchQueueFullError(
        `Cannot ${what}: ${rows.length} requests are more than the ${this.room} the queue takes now; retry later`,
      );
    }
    return rows.map((ids, i) => this.#queueRow(ids, { ...options, row: i }, sampling, what));
  }

  /** Checks what every request of a call shares: the batcher, the model, the options; the sampler settings. */
  #check(options: BatchRequestOptions, what: string): Sampling | undefined {
    if (this.#closed) throw new Error(`Cannot ${what}: the batcher was closed, create a new one`);
    runnerOf(this.#model).check(what);
    if (options === null || typeof options !== "object") {
      throw new TypeError(`Cannot ${what}: options must be an object like { maxNewTokens: 32 }`);
    }
    checkOptions(options, REQUEST_KEYS, what);
    const n = options.maxNewTokens;
    if (!Number.isInteger(n) || n < 1) {
      throw new RangeError(`Cannot ${what}: maxNewTokens '${n}' must be a positive integer`);
    }
    return checkSampling(options, this.#model.config.vocab_size, what);
  }

  /** A prompt's ids, checked against the vocabulary, and with `n` new tokens against the context. */
  #ids(prompt: number[] | Uint32Array, n: number, what: string): Uint32Array<ArrayBuffer> {
    const cfg = this.#model.config;
    const ids = Uint32Array.from(prompt as ArrayLike<number>);
    if (ids.length === 0) throw new RangeError(`Cannot ${what}: the prompt has 0 tokens, give at least one`);
    for (let i = 0; i < ids.length; i++) {
      const id = (prompt as ArrayLike<number>)[i];
      if (!Number.isInteger(id) || id < 0 || id >= cfg.vocab_size) {
        throw new RangeError(`Cannot ${what}: token id '${id}' at ${i} is outside [0, ${cfg.vocab_size})`);
      }
    }
    checkContext(what, ids.length, n, cfg.context_length);
    return ids;
  }

  /** Queues a checked request (or throws when the queue is full). */
  #queueRow(
    ids: Uint32Array<ArrayBuffer>,
    options: BatchRequestOptions,
    sampling: Sampling | undefined,
    what: string,
  ): BatchRequest {
    if (this.room === 0) {
      throw new BatchQueueFullError(
        `Cannot ${what}: ${this.#queue.length} requests already wait for one of ${this.maxBatch} slots; retry later`,
      );
    }
    const req = new BatchRequest(ids, options, sampling, () => this.#cancelled(req));
    if (options.signal?.aborted) req.cancel();
    if (!req.ended) {
      this.#queue.push(req);
      if (!this.#running) {
        this.#running = true;
        this.#loop = this.#run();
      }
    }
    return req;
  }

  /**
   * Cancels every request, waits for the step in flight, and frees the workspace.
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const r of [...this.#queue, ...this.#active]) r.cancel();
    await this.#loop;
    this.#engine?.destroy();
    this.#engine = undefined;
  }

  #cancelled(req: BatchRequest): void {
    const q = this.#queue.indexOf(req);
    if (q >= 0) {
      this.#queue.splice(q, 1);
      req.finish("cancelled");
    }
  }

  #release(req: BatchRequest): void {
    this.#active.splice(this.#active.indexOf(req), 1);
    this.#free.push(req.slot);
    // what ran through the model: the prompt and every new token but the last
    if (this.promptCache) this.#cache.keep(req.slot, req.prompt, req.ids.slice(0, -1));
  }

  /** Token rows a step runs at most: one prompt of the whole context, or a slot each. */
  get #rowsPerStep(): number {
    return Math.max(this.maxBatch, this.#model.config.context_length);
  }

  #engineFor(): RaggedEngine {
    this.#engine ??= new RaggedEngine(runnerOf(this.#model), {
      slots: this.maxBatch,
      rows: this.#rowsPerStep,
      steps: this.maxBatch + this.chunkSize,
    });
    return this.#engine;
  }

  async #run(): Promise<void> {
    try {
      while (this.#active.length > 0 || this.#queue.length > 0) {
        for (const r of [...this.#active]) {
          if (r.cancelled) {
            r.finish("cancelled");
            this.#release(r);
          }
        }
        const engine = this.#engineFor();
        const fresh: BatchRequest[] = [];
        while (this.#queue.length > 0 && this.#free.length > 0) {
          const r = this.#queue.shift()!;
          const { slot, cached } = this.#cache.take(this.#free, this.promptCache ? r.prompt : undefined);
          r.slot = slot;
          r.cachedTokens = cached;
          engine.writePrompt(r.slot, r.prompt);
          fresh.push(r);
          this.#active.push(r);
        }
        if (this.#active.length === 0) continue;
        await this.#chunk(engine, fresh);
      }
    } catch (e) {
      this.#cache.clear();
      for (const r of [...this.#queue, ...this.#active]) r.finish("cancelled", e);
      this.#queue = [];
      for (const r of [...this.#active]) this.#release(r);
    } finally {
      // cleared in the same turn the loop ends, so an `add` right after starts a new one
      this.#running = false;
    }
  }

  /** One run: the prefills of the requests that just joined, then decoding steps for all. */
  async #chunk(engine: RaggedEngine, fresh: BatchRequest[]): Promise<void> {
    const steps: RaggedStep[] = [];
    const rowOf = (r: BatchRequest, start: number, index: number): RaggedRow => ({
      slot: r.slot,
      start,
      index,
      temperature: r.sampling?.temperature ?? 0,
      topK: r.sampling?.topK ?? 0,
      topP: r.sampling?.topP ?? 1,
      seed: r.sampling?.seed ?? 0,
      draw: r.row,
    });
    // prompts with as many tokens left to compute (past what the cache holds) share a step
    const byLength = new Map<number, BatchRequest[]>();
    for (const r of fresh) {
      const T = r.prompt.length - r.cachedTokens;
      byLength.set(T, [...(byLength.get(T) ?? []), r]);
    }
    const prefill: [number, BatchRequest[]][] = [];
    for (const [T, group] of byLength) {
      const per = Math.max(1, Math.floor(this.#rowsPerStep / T));
      for (let i = 0; i < group.length; i += per) prefill.push([T, group.slice(i, i + per)]);
    }
    for (const [T, group] of prefill) steps.push({ T, rows: group.map((r) => rowOf(r, r.cachedTokens, 0)) });
    // then every request with a token to run, as far as the one nearest its budget
    const length = (r: BatchRequest) => r.prompt.length + r.generated + (fresh.includes(r) ? 1 : 0);
    const made = (r: BatchRequest) => r.generated + (fresh.includes(r) ? 1 : 0);
    const decoding = this.#active.filter((r) => made(r) < r.maxNewTokens);
    const busy = fresh.length > 0 || this.#queue.length > 0;
    const chunk = busy ? this.#busyChunk : this.chunkSize;
    const K = decoding.length === 0 ? 0 : Math.min(chunk, ...decoding.map((r) => r.maxNewTokens - made(r)));
    for (let k = 0; k < K; k++) {
      steps.push({ T: 1, rows: decoding.map((r) => rowOf(r, length(r) - 1 + k, made(r) + k)) });
    }
    const logprobs = this.#active.some((r) => r.wantsLogprobs);
    const before = new Map(this.#active.map((r) => [r, length(r)]));
    // the longest any request may still run: whether greedy steps repay screening the head
    const left = Math.max(0, ...this.#active.map((r) => r.maxNewTokens - r.generated));
    const out = await engine.run(steps, { logprobs, steps: left });
    this.#steps += steps.length;
    const L = engine.L;
    const ended = new Set<BatchRequest>();
    const take = (r: BatchRequest, from: number, n: number, lp?: (TokenLogprobs | undefined)[]) => {
      if (ended.has(r) || r.ended) return;
      const ids = out.tokens.subarray(r.slot * L + from, r.slot * L + from + n);
      if (r.push(ids, lp as TokenLogprobs[] | undefined)) ended.add(r);
    };
    prefill.forEach(([_, group], i) => group.forEach((r, b) => take(r, r.prompt.length, 1, [out.logprobs?.[i][b]])));
    decoding.forEach((r, b) => {
      const lp = out.logprobs?.slice(prefill.length).map((s) => s[b]);
      take(r, before.get(r)!, K, lp);
    });
    for (const r of [...this.#active]) {
      if (r.ended) this.#release(r);
    }
  }
}
