/**
 * What the server runs requests on: a model with its batcher, in this thread or in a worker.
 * On a CPU adapter (lavapipe) a submission runs on the thread that submits it, and waiting for a
 * readback blocks that thread, so the command line's server keeps the model in a worker and the
 * HTTP side stays responsive while the model works.
 *
 * @module
 */

import type { GPTConfig } from "../weights/config.ts";
import type { GPTModel } from "../model/model.ts";
import { Batcher, type BatcherOptions, type BatchRequest, type BatchRequestOptions } from "../model/batcher.ts";
import { type PromptLogprobs, promptLogprobs } from "./_prompt_logprobs.ts";

/** How busy the batcher is. */
export interface BatchStats {
  /** Requests decoding now. */
  readonly active: number;
  /** Requests waiting for a slot. */
  readonly queued: number;
  /** Shared steps run so far. */
  readonly steps: number;
}

/** A model and its batcher, wherever they run. */
export interface ServingBackend extends BatchStats {
  /** The model's configuration. */
  readonly config: Required<GPTConfig>;
  /** Requests it can ever hold: decoding plus waiting. */
  readonly capacity: number;
  /** Requests decoding at once: the key/value cache's slots. */
  readonly slots: number;
  /** Requests it takes now before the queue is full. */
  readonly room: number;
  /** Queues a request (throws as {@linkcode Batcher.add} does). */
  add(prompt: number[], options: BatchRequestOptions): BatchRequest;
  /** The log-probabilities of a prompt's tokens with `n` alternatives each; `signal` stops the work. */
  promptLogprobs(ids: number[], n: number, signal?: AbortSignal): Promise<PromptLogprobs>;
  /** Cancels everything and frees the batcher (and the worker). */
  close(waitMs?: number): Promise<void>;
}

/** A model in this thread. */
export class LocalBackend implements ServingBackend {
  readonly config: Required<GPTConfig>;
  #model: GPTModel;
  #batcher: Batcher;

  /**
   * @param model The model.
   * @param options The batcher's sizes.
   */
  constructor(model: GPTModel, options: BatcherOptions) {
    this.#model = model;
    this.config = model.config;
    this.#batcher = new Batcher(model, options);
  }

  get active(): number {
    return this.#batcher.active;
  }

  get queued(): number {
    return this.#batcher.queued;
  }

  get steps(): number {
    return this.#batcher.steps;
  }

  get capacity(): number {
    return this.#batcher.maxBatch + this.#batcher.maxQueue;
  }

  get slots(): number {
    return this.#batcher.maxBatch;
  }

  get room(): number {
    return this.#batcher.room;
  }

  add(prompt: number[], options: BatchRequestOptions): BatchRequest {
    return this.#batcher.add(prompt, options);
  }

  async promptLogprobs(ids: number[], n: number, signal?: AbortSignal): Promise<PromptLogprobs> {
    signal?.throwIfAborted();
    const logits = await this.#model.forward([ids]);
    signal?.throwIfAborted();
    return await promptLogprobs(logits, ids, n, signal);
  }

  close(): Promise<void> {
    return this.#batcher.close();
  }
}
