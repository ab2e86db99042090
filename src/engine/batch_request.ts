/**
 * One request of a continuous batch: its options, the chunks of new tokens it yields as they
 * come, and its result. The {@linkcode Batcher} (`batcher.ts`) feeds it.
 *
 * @module
 */

import type { Sampling } from "./_plan.ts";
import type { TokenLogprobs } from "./ragged.ts";

/** Options of one request. */
export interface BatchRequestOptions {
  /** How many tokens to generate (at most; fewer when the end token comes). Prompt plus these fit the context. */
  maxNewTokens: number;
  /** Softmax temperature; 0 (the default) is greedy decoding. */
  temperature?: number;
  /** Sample only among the k largest logits. */
  topK?: number;
  /** Sample only among the smallest most probable set whose mass reaches topP, in (0, 1]. */
  topP?: number;
  /** Seed of the draws (default: random). */
  seed?: number;
  /** A token that ends the request (not included in its ids). */
  eosId?: number;
  /** Report each new token's log-probability and its 5 most likely alternatives. */
  logprobs?: boolean;
  /** Draw as row `row` of a {@linkcode generate} batch would (default 0), for several samples of one seed. */
  row?: number;
  /** Cancels the request: it ends with `finishReason: "cancelled"` and frees its slot. */
  signal?: AbortSignal;
}

/** Why a request ended: its token budget, its end token, or a cancel. */
export type FinishReason = "length" | "stop" | "cancelled";

/** New tokens of a request, as they come. */
export interface BatchChunk {
  /** The new ids. */
  ids: number[];
  /** Their log-probabilities, when asked for. */
  logprobs?: TokenLogprobs[];
}

/** The whole answer to a request. */
export interface BatchResult {
  /** The new ids. */
  ids: number[];
  /** Why it ended. */
  finishReason: FinishReason;
  /** Their log-probabilities, when asked for. */
  logprobs?: TokenLogprobs[];
}

/**
 * Requests a batcher takes before its queue is full: its slots and its queue, less the requests
 * it holds (decoding or waiting). The one statement of the queue's rule, for the batcher and for
 * what stands in for one (the server's worker backend).
 *
 * @param sizes The batcher's slots and queue.
 * @param held Requests decoding or waiting.
 * @returns How many more it takes.
 */
export function queueRoom(sizes: { maxBatch: number; maxQueue: number }, held: number): number {
  return Math.max(0, sizes.maxBatch + sizes.maxQueue - held);
}

/** Thrown by {@linkcode Batcher.add} when the queue is full. */
export class BatchQueueFullError extends Error {
  /**
   * Makes the error.
   *
   * @param message What happened.
   */
  constructor(message: string) {
    super(message);
    this.name = "BatchQueueFullError";
  }
}

/** A request in a batch: its chunks as an async iterable, and its result. */
export class BatchRequest implements AsyncIterable<BatchChunk> {
  /** The whole answer, once it ends (rejects when the model fails). */
  readonly result: Promise<BatchResult>;
  /** The prompt. */
  readonly prompt: Uint32Array<ArrayBuffer>;
  /** @internal */ readonly maxNewTokens: number;
  /** @internal */ readonly sampling?: Sampling;
  /** @internal */ readonly eosId?: number;
  /** @internal */ readonly wantsLogprobs: boolean;
  /** @internal */ readonly row: number;
  /** @internal */ slot = -1;
  /** @internal */ cancelled = false;
  /** Prompt tokens whose keys and values came from the prompt cache (set when it starts). */
  cachedTokens = 0;
  #ids: number[] = [];
  #logprobs: TokenLogprobs[] = [];
  #chunks: BatchChunk[] = [];
  #wake?: () => void;
  #ended = false;
  #failure: unknown;
  #settle!: { resolve: (r: BatchResult) => void; reject: (e: unknown) => void };
  #onCancel: () => void;

  /** @internal */
  constructor(
    prompt: Uint32Array<ArrayBuffer>,
    o: BatchRequestOptions,
    sampling: Sampling | undefined,
    onCancel: () => void,
  ) {
    this.prompt = prompt;
    this.maxNewTokens = o.maxNewTokens;
    this.sampling = sampling;
    this.eosId = o.eosId;
    this.wantsLogprobs = o.logprobs === true;
    this.row = o.row ?? 0;
    this.#onCancel = onCancel;
    this.result = new Promise((resolve, reject) => this.#settle = { resolve, reject });
    this.result.catch(() => {});
    o.signal?.addEventListener("abort", () => this.cancel(), { once: true });
  }

  /** New tokens so far. */
  get generated(): number {
    return this.#ids.length;
  }

  /** @internal The new tokens so far. */
  get ids(): readonly number[] {
    return this.#ids;
  }

  /** Whether it has ended. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Ends the request at the next chunk boundary (at once while it waits in the queue). */
  cancel(): void {
    if (this.#ended || this.cancelled) return;
    this.cancelled = true;
    this.#onCancel();
  }

  /** @internal Appends tokens; returns true when the request ends with them. */
  push(ids: ArrayLike<number>, logprobs?: TokenLogprobs[]): boolean {
    const chunk: BatchChunk = { ids: [] };
    if (this.wantsLogprobs) chunk.logprobs = [];
    let reason: FinishReason | undefined;
    for (let i = 0; i < ids.length && !reason; i++) {
      if (ids[i] === this.eosId) {
        reason = "stop";
        break;
      }
      chunk.ids.push(ids[i]);
      this.#ids.push(ids[i]);
      if (chunk.logprobs && logprobs) {
        chunk.logprobs.push(logprobs[i]);
        this.#logprobs.push(logprobs[i]);
      }
      if (this.#ids.length >= this.maxNewTokens) reason = "length";
    }
    if (chunk.ids.length > 0) this.#chunks.push(chunk);
    if (reason) this.finish(reason);
    else this.#wake?.();
    return reason !== undefined;
  }

  /** @internal */
  finish(reason: FinishReason, failure?: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#failure = failure;
    if (failure !== undefined) this.#settle.reject(failure);
    else {
      this.#settle.resolve({
        ids: this.#ids,
        finishReason: reason,
        ...(this.wantsLogprobs ? { logprobs: this.#logprobs } : {}),
      });
    }
    this.#wake?.();
  }

  /** The new tokens, a chunk at a time, until the request ends (throws when the model fails). */
  async *[Symbol.asyncIterator](): AsyncIterator<BatchChunk> {
    while (true) {
      if (this.#chunks.length > 0) {
        yield this.#chunks.shift()!;
        continue;
      }
      if (this.#ended) break;
      await new Promise<void>((r) => this.#wake = r);
      this.#wake = undefined;
    }
    if (this.#failure !== undefined) throw this.#failure;
  }
}
