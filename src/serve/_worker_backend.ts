/**
 * A model and its batcher in a worker (`_serve_worker.ts`), seen from the server's thread as a
 * {@linkcode ServingBackend}: requests go to the worker as messages, their chunks come back.
 *
 * @module
 */

import type { GPTConfig } from "../weights/config.ts";
import type { WeightDType } from "../gpu/weights.ts";
import {
  type BatcherOptions,
  BatchQueueFullError,
  BatchRequest,
  type BatchRequestOptions,
  type FinishReason,
  type TokenLogprobs,
} from "../model/batcher.ts";
import { queueRoom } from "../engine/batch_request.ts";
import type { ServingBackend } from "./serving_backend.ts";
import type { PromptLogprobs } from "./_prompt_logprobs.ts";

/** Where the worker gets its model: a hub model, a weights file, or a seeded untrained one. */
export interface ModelSpec {
  /** A GPT-2 model on the Hugging Face hub (`gpt2`, `openai-community/gpt2-medium`, ...). */
  hub?: string;
  /** Its revision (default main). */
  revision?: string;
  /** Only the hub cache. */
  offline?: boolean;
  /** A `.safetensors` file or a directory with `model.safetensors`. */
  weights?: string;
  /** How weights are stored (default f32). */
  dtype?: WeightDType;
  /** The untrained model's configuration (default `GPT_CONFIG_124M`). */
  config?: GPTConfig;
  /** The untrained model's seed (default 123). */
  seed?: number;
  /** No loading progress. */
  quiet?: boolean;
}

interface Stats {
  active: number;
  queued: number;
  steps: number;
}

/** Messages to the worker. */
export type WorkerCall =
  | { type: "init"; spec: ModelSpec; batcher: BatcherOptions }
  | { type: "add"; id: number; prompt: number[]; options: Omit<BatchRequestOptions, "signal"> }
  | { type: "cancel"; id: number }
  | { type: "prompt"; id: number; ids: number[]; n: number }
  | { type: "cancel_prompt"; id: number }
  | { type: "close" };

/** An error as it crosses to the other thread. */
export interface WireError {
  name: string;
  message: string;
}

/** Messages from the worker. */
export type WorkerReply =
  | { type: "ready"; config: Required<GPTConfig> }
  | { type: "log"; text: string }
  | { type: "chunk"; id: number; ids: number[]; logprobs?: TokenLogprobs[]; cached: number; stats: Stats }
  | { type: "done"; id: number; reason: FinishReason; cached: number; stats: Stats }
  | { type: "failed"; id: number; error: WireError; stats?: Stats }
  | { type: "prompt"; id: number; result?: PromptLogprobs; error?: WireError }
  | { type: "fatal"; error: WireError }
  | { type: "closed" };

/** The error a message carries, rebuilt with its class. */
export function revive(e: WireError): Error {
  const err = e.name === "RangeError"
    ? new RangeError(e.message)
    : e.name === "TypeError"
    ? new TypeError(e.message)
    : new Error(e.message);
  if (err.name !== e.name) err.name = e.name;
  return err;
}

/** The server's side of a model in a worker. */
export class WorkerBackend implements ServingBackend {
  readonly config: Required<GPTConfig>;
  #worker: Worker;
  #opts: Required<Pick<BatcherOptions, "maxBatch" | "maxQueue">>;
  #stats: Stats = { active: 0, queued: 0, steps: 0 };
  #reqs = new Map<number, BatchRequest>();
  #prompts = new Map<number, { resolve: (l: PromptLogprobs) => void; reject: (e: Error) => void }>();
  #next = 0;
  #dead?: Error;
  #closed?: () => void;

  private constructor(worker: Worker, config: Required<GPTConfig>, opts: BatcherOptions) {
    this.#worker = worker;
    this.config = config;
    this.#opts = { maxBatch: opts.maxBatch ?? 8, maxQueue: opts.maxQueue ?? 64 };
    worker.onmessage = (e: MessageEvent<WorkerReply>) => this.#receive(e.data);
    worker.onerror = (e) => {
      e.preventDefault();
      this.#fail(new Error(`The model's worker stopped: ${e.message}`));
    };
  }

  /**
   * Starts a worker and loads the model in it.
   *
   * @param spec Where the model comes from.
   * @param options The batcher's sizes, and where loading progress goes.
   * @returns The backend, once the model is loaded.
   */
  static start(
    spec: ModelSpec,
    options: BatcherOptions & { onLog?: (s: string) => void } = {},
  ): Promise<WorkerBackend> {
    const { onLog, ...batcher } = options;
    const worker = new Worker(new URL("./_serve_worker.ts", import.meta.url), { type: "module" });
    return new Promise((resolve, reject) => {
      worker.onmessage = (e: MessageEvent<WorkerReply>) => {
        const m = e.data;
        if (m.type === "log") onLog?.(m.text);
        else if (m.type === "ready") resolve(new WorkerBackend(worker, m.config, batcher));
        else if (m.type === "fatal") {
          worker.terminate();
          reject(revive(m.error));
        }
      };
      worker.onerror = (e) => {
        e.preventDefault();
        worker.terminate();
        reject(new Error(`The model's worker failed to start: ${e.message}`));
      };
      worker.postMessage({ type: "init", spec, batcher } satisfies WorkerCall);
    });
  }

  get active(): number {
    return this.#stats.active;
  }

  get queued(): number {
    return this.#stats.queued;
  }

  get steps(): number {
    return this.#stats.steps;
  }

  get capacity(): number {
    return this.#opts.maxBatch + this.#opts.maxQueue;
  }

  get slots(): number {
    return this.#opts.maxBatch;
  }

  /** Counted on this side: a request holds its place until the worker says it ended. */
  get room(): number {
    return queueRoom(this.#opts, this.#reqs.size);
  }

  add(prompt: number[], options: BatchRequestOptions): BatchRequest {
    if (this.#dead) throw this.#dead;
    if (this.room === 0) {
      throw new BatchQueueFullError(
        `Cannot add a request: ${
          this.#reqs.size - this.#opts.maxBatch
        } requests already wait for one of ${this.#opts.maxBatch} slots; retry later`,
      );
    }
    const id = ++this.#next;
    const { signal: _, ...rest } = options;
    const req = new BatchRequest(
      Uint32Array.from(prompt),
      options,
      undefined,
      () => this.#post({ type: "cancel", id }),
    );
    this.#reqs.set(id, req);
    this.#post({ type: "add", id, prompt, options: rest });
    return req;
  }

  promptLogprobs(ids: number[], n: number, signal?: AbortSignal): Promise<PromptLogprobs> {
    if (this.#dead) return Promise.reject(this.#dead);
    if (signal?.aborted) return Promise.reject(signal.reason);
    const id = ++this.#next;
    return new Promise((resolve, reject) => {
      const abort = () => {
        this.#prompts.delete(id);
        this.#post({ type: "cancel_prompt", id });
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", abort, { once: true });
      const done = () => signal?.removeEventListener("abort", abort);
      this.#prompts.set(id, {
        resolve: (r) => (done(), resolve(r)),
        reject: (e) => (done(), reject(e)),
      });
      this.#post({ type: "prompt", id, ids, n });
    });
  }

  /**
   * Asks the worker to close and waits for it up to `waitMs` (default 10,000); then ends it.
   *
   * @param waitMs How long the worker may take to finish its step and free the GPU.
   */
  async close(waitMs = 10_000): Promise<void> {
    if (!this.#dead) {
      const closed = new Promise<void>((r) => this.#closed = r);
      this.#post({ type: "close" });
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([closed, new Promise((r) => timer = setTimeout(r, waitMs))]);
      clearTimeout(timer);
    }
    this.#fail(new Error("The server was closed"));
    this.#worker.terminate();
  }

  #post(m: WorkerCall): void {
    if (!this.#dead) this.#worker.postMessage(m);
  }

  #receive(m: WorkerReply): void {
    if ("stats" in m && m.stats) this.#stats = m.stats;
    if (m.type === "chunk") {
      const req = this.#reqs.get(m.id);
      if (req) req.cachedTokens = m.cached;
      req?.push(m.ids, m.logprobs);
    } else if (m.type === "done" || m.type === "failed") {
      const req = this.#reqs.get(m.id);
      this.#reqs.delete(m.id);
      if (req && m.type === "done") req.cachedTokens = m.cached;
      if (m.type === "done") req?.finish(m.reason);
      else req?.finish("cancelled", revive(m.error));
    } else if (m.type === "prompt") {
      const w = this.#prompts.get(m.id);
      this.#prompts.delete(m.id);
      if (m.result) w?.resolve(m.result);
      else w?.reject(revive(m.error!));
    } else if (m.type === "fatal") this.#fail(revive(m.error));
    else if (m.type === "closed") this.#closed?.();
  }

  #fail(e: Error): void {
    this.#dead ??= e;
    for (const r of this.#reqs.values()) r.finish("cancelled", e);
    this.#reqs.clear();
    for (const w of this.#prompts.values()) w.reject(e);
    this.#prompts.clear();
    this.#stats = { ...this.#stats, active: 0, queued: 0 };
  }
}
