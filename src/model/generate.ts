/**
 * Text generation: the book's `generate_text_simple`, with its steps on the GPU.
 *
 * @module
 */

import type { GPTModel } from "./model.ts";
import { checkBatch } from "../engine/_batch.ts";
import { checkOptions } from "../engine/_options.ts";
import { runnerOf } from "../engine/_runner_of.ts";
import { cachedPlan, simplePlan } from "../engine/_plan.ts";
import { checkSampling } from "../engine/_sampling.ts";
import { generateRagged } from "./_ragged_generate.ts";
import type { GenerateOptions } from "./_generate_options.ts";

export type { GenerateOptions };
import { encode, TextStreamer } from "../text/tokenizer.ts";

/**
 * Most token ids one call holds (prompt and new tokens of every row): its token rows live in one
 * storage buffer of at most 128 MiB, the WebGPU default binding limit.
 */
const MAX_CALL_TOKENS = 2 ** 25;

function checkCounts(maxNewTokens: unknown, contextSize: unknown, shape: { B: number; T: number }, what: string): void {
  if (typeof maxNewTokens !== "number" || !Number.isInteger(maxNewTokens) || maxNewTokens < 0) {
    throw new RangeError(`Cannot ${what}: maxNewTokens '${maxNewTokens}' must be a non-negative integer`);
  }
  if (typeof contextSize !== "number" || !Number.isInteger(contextSize) || contextSize < 1) {
    throw new RangeError(`Cannot ${what}: contextSize '${contextSize}' must be a positive integer`);
  }
  const total = shape.B * (shape.T + maxNewTokens);
  if (total > MAX_CALL_TOKENS) {
    throw new RangeError(
      `Cannot ${what}: ${shape.B} rows of ${shape.T} + ${maxNewTokens} tokens are ${total} token ids, over the ${MAX_CALL_TOKENS} one call holds; generate fewer tokens per call`,
    );
  }
}

function toRows(out: Uint32Array, B: number, L: number): number[][] {
  return Array.from({ length: B }, (_, b) => Array.from(out.subarray(b * L, (b + 1) * L)));
}

/**
 * Greedy generation exactly as the book's `generate_text_simple`: for each new token, run the
 * model on the last `contextSize` tokens of each row, take the last position's argmax, append.
 * Every step runs on the GPU and feeds its token to the next; ids come back once at the end.
 *
 * @param model The model.
 * @param idx Prompt token ids, `[batch, tokens]`, every row the same length (may exceed the context).
 * @param maxNewTokens How many tokens to append (0 returns the prompt).
 * @param contextSize How many trailing tokens each step sees.
 * @returns Each row with the new ids appended.
 * @throws {TypeError} On a ragged or malformed batch.
 * @throws {RangeError} On a bad id, count or context size.
 * @example
 * ```ts ignore
 * const out = await generateTextSimple(model, [[15496, 11, 314, 716]], 6, 1024);
 * // [[15496, 11, 314, 716, 27018, 24086, 47843, 30961, 42348, 7267]]
 * ```
 */
export async function generateTextSimple(
  model: GPTModel,
  idx: number[][],
  maxNewTokens: number,
  contextSize: number,
): Promise<number[][]> {
  const what = "generate";
  const { B, T, flat } = checkBatch(idx, model.config.vocab_size, what);
  checkCounts(maxNewTokens, contextSize, { B, T }, what);
  const plan = simplePlan(T, maxNewTokens, contextSize);
  const widest = Math.max(0, ...plan.map((p) => p.T));
  if (widest > model.config.context_length) {
    throw new RangeError(
      `Cannot generate: contextSize ${contextSize} lets a step see ${widest} tokens, more than the model's context_length ${model.config.context_length}; pass a contextSize of at most ${model.config.context_length}`,
    );
  }
  if (maxNewTokens === 0) return idx.map((r) => r.slice());
  const L = T + maxNewTokens;
  const out = await runnerOf(model).runPlan(flat, B, L, plan);
  return toRows(out, B, L);
}

const GENERATE_KEYS = [
  "maxNewTokens",
  "contextSize",
  "temperature",
  "topK",
  "topP",
  "eosId",
  "seed",
  "onProgress",
  "signal",
] as const;
const STREAM_KEYS = [...GENERATE_KEYS, "chunkSize"] as const;

/** Rows of `[B, L]` cut after `steps` new tokens, and before the first `eosId` among the new ones. */
function cutRows(out: Uint32Array, B: number, T: number, L: number, steps: number, eosId?: number): number[][] {
  return Array.from({ length: B }, (_, b) => {
    const row = out.subarray(b * L, b * L + T + steps);
    let end = T + steps;
    if (eosId !== undefined) {
      const at = row.indexOf(eosId, T);
      if (at >= 0) end = at;
    }
    return Array.from(row.subarray(0, end));
  });
}

/** Whether every row has met `eosId` among its first `steps` new tokens. */
function allEnded(out: Uint32Array, B: number, T: number, L: number, steps: number, eosId: number): boolean {
  for (let b = 0; b < B; b++) {
    if (out.subarray(b * L + T, b * L + T + steps).indexOf(eosId) < 0) return false;
  }
  return true;
}

interface RunState {
  B: number;
  T: number;
  L: number;
  steps: number;
  out: Uint32Array;
}

/** Validates, plans and runs a cached generation; `onChunk` sees the rows every `chunk` steps. */
async function run(
  model: GPTModel,
  idx: number[][],
  options: GenerateOptions,
  what: string,
  chunk?: number,
  onChunk?: (s: RunState) => boolean | Promise<boolean>,
): Promise<RunState> {
  if (options === null || typeof options !== "object") {
    throw new TypeError(`Cannot ${what}: options must be an object like { maxNewTokens: 32 }`);
  }
  checkOptions(options, what === "stream" ? STREAM_KEYS : GENERATE_KEYS, what);
  const { B, T, flat } = checkBatch(idx, model.config.vocab_size, what);
  const contextSize = options.contextSize ?? model.config.context_length;
  checkCounts(options.maxNewTokens, contextSize, { B, T }, what);
  const sampling = checkSampling(options, model.config.vocab_size, what);
  if (contextSize > model.config.context_length && T + options.maxNewTokens - 1 > model.config.context_length) {
    throw new RangeError(
      `Cannot ${what}: contextSize ${contextSize} is more than the model's context_length ${model.config.context_length}; pass a contextSize of at most ${model.config.context_length}`,
    );
  }
  const L = T + options.maxNewTokens;
  const state: RunState = { B, T, L, steps: 0, out: new Uint32Array(B * L) };
  if (options.maxNewTokens === 0) {
    state.out.set(flat);
    for (let b = 0; b < B; b++) state.out.set(flat.subarray(b * T, (b + 1) * T), b * L);
    return state;
  }
  const eos = options.eosId;
  const progress = options.onProgress;
  if (progress !== undefined && typeof progress !== "function") {
    throw new TypeError(`Cannot ${what}: onProgress must be a function`);
  }
  const signal = options.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(`Cannot ${what}: signal must be an AbortSignal`);
  }
  signal?.throwIfAborted();
  // with an end token or a signal, read back every 16 steps to stop once every row has ended or the
  // signal fires; for progress or streaming, also right after the first step
  const every = chunk ?? (eos !== undefined || progress || signal ? 16 : undefined);
  const early = progress !== undefined || onChunk !== undefined;
  const t0 = performance.now();
  const rows = await runnerOf(model).runPlan(flat, B, L, cachedPlan(T, options.maxNewTokens, contextSize), {
    sampling,
    readAfter: every === undefined ? undefined : (n) => (early && n === 1) || n % every === 0,
    onChunk: async (rows, steps) => {
      state.out = rows;
      state.steps = steps;
      progress?.(steps, performance.now() - t0);
      if (onChunk && !(await onChunk(state))) return false;
      if (signal?.aborted) return false;
      return eos === undefined || !allEnded(rows, B, T, L, steps, eos);
    },
  });
  if (state.steps === 0) {
    state.out = rows;
    state.steps = options.maxNewTokens;
  }
  return state;
}

/**
 * Generation with a key/value cache: the prompt is run once, then each new token costs one
 * position of attention over the cache instead of a pass over the whole context. Greedy by
 * default, with ids identical to {@linkcode generateTextSimple} for the same `maxNewTokens` and
 * `contextSize`, including past the context, where the window slides and each step re-runs the
 * window. With `temperature` > 0 it samples on the GPU (top-k, then temperature, softmax, top-p)
 * from a seeded generator. With `eosId` a row stops before that token; the rows of a batch then come
 * back with different lengths (each is its prompt plus its own new tokens). Rows of different
 * lengths run with continuous batching (a {@linkcode Batcher}): each gets the ids it would get
 * alone, and each prompt plus `maxNewTokens` must fit the context (`onProgress` is called once, at the end).
 *
 * @param model The model.
 * @param idx Prompt token ids, `[batch, tokens]`; rows may differ in length.
 * @param options `maxNewTokens` (required), `contextSize`, and the sampling options.
 * @returns Each row with its new ids appended.
 * @throws {TypeError} On a malformed batch.
 * @throws {RangeError} On a bad id, count, context size or sampling option.
 * @example
 * ```ts ignore
 * const out = await generate(model, [[15496, 11, 314, 716]], { maxNewTokens: 128 });
 * const ragged = await generate(model, [encode("Hello, I am"), encode("Every effort moves you")], { maxNewTokens: 20 });
 * const sampled = await generate(model, [ids], { maxNewTokens: 50, temperature: 0.8, topK: 40, seed: 7 });
 * ```
 */
export async function generate(model: GPTModel, idx: number[][], options: GenerateOptions): Promise<number[][]> {
  if (isRagged(idx)) {
    checkOptions(options, GENERATE_KEYS, "generate");
    return await generateRagged(model, idx, options);
  }
  const s = await run(model, idx, options, "generate");
  options.signal?.throwIfAborted();
  return cutRows(s.out, s.B, s.T, s.L, s.steps, options?.eosId);
}

/** Whether `idx` is rows of token ids of different lengths. */
function isRagged(idx: unknown): idx is number[][] {
  return Array.isArray(idx) && idx.length > 1 && idx.every(Array.isArray) &&
    idx.some((r) => r.length !== idx[0].length) && idx.every((r) => r.length > 0);
}

/** Options for {@linkcode stream}. */
export interface StreamOptions extends GenerateOptions {
  /** Steps between readbacks (default 8): smaller shows text sooner, larger waits less often. */
  chunkSize?: number;
}

/**
 * Generates text and yields it in pieces as it is produced, reading back every `chunkSize` steps.
 * A piece never ends inside a UTF-8 character: a GPT-2 token can end in the middle of one (an
 * emoji, an accented letter), so such bytes wait for the token that completes them.
 *
 * @param model The model.
 * @param prompt Text (encoded with GPT-2's tokenizer) or token ids of one row.
 * @param options Generation options, `signal` and `chunkSize`.
 * @returns The new text, in pieces; their concatenation is the decoded new ids.
 * @example
 * ```ts ignore
 * let text = "";
 * for await (const piece of stream(model, "Every effort moves you", { maxNewTokens: 50, temperature: 0.8 })) {
 *   text += piece; // or show each piece as it comes
 * }
 * ```
 */
export async function* stream(
  model: GPTModel,
  prompt: string | number[],
  options: StreamOptions,
): AsyncGenerator<string, void, undefined> {
  const text = new TextStreamer();
  for await (const ids of streamIds(model, typeof prompt === "string" ? encode(prompt) : prompt, options)) {
    const piece = text.push(ids);
    if (piece) yield piece;
  }
  if (options?.signal?.aborted) return;
  const rest = text.flush();
  if (rest) yield rest;
}

/**
 * Generates from one row of ids and yields the new ids in pieces as they are produced, reading
 * back every `chunkSize` steps (what {@linkcode stream} decodes; the command line prints ids this
 * way for models with another vocabulary).
 *
 * @param model The model.
 * @param ids The prompt's token ids.
 * @param options Generation options, `signal` and `chunkSize`.
 * @returns The new ids, a chunk at a time.
 */
export async function* streamIds(
  model: GPTModel,
  ids: number[],
  options: StreamOptions,
): AsyncGenerator<number[], void, undefined> {
  const chunk = options?.chunkSize ?? 8;
  if (!Number.isInteger(chunk) || chunk < 1) {
    throw new RangeError(`Cannot stream: chunkSize '${chunk}' must be a positive integer`);
  }
  const signal = options?.signal;
  if (signal?.aborted) return;
  const pieces: number[][] = [];
  let seen = 0; // new ids handed out
  let stopped = false;
  let finished = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const flush = (s: RunState) => {
    const row = cutRows(s.out, 1, s.T, s.L, s.steps, options.eosId)[0].slice(s.T);
    if (row.length > seen) {
      pieces.push(row.slice(seen));
      seen = row.length;
      wake?.();
    }
  };
  let lastState: RunState | undefined;
  // the signal stops the run here; stream() ends its iteration rather than rejecting
  const { signal: _, ...rest } = options;
  const done = run(model, [ids], rest, "stream", chunk, (s) => {
    lastState = s;
    flush(s);
    return !stopped && !signal?.aborted;
  }).then(
    (s) => {
      flush(lastState ?? s);
      finished = true;
      wake?.();
    },
    (e) => {
      failure = e;
      finished = true;
      wake?.();
    },
  );
  try {
    while (true) {
      if (signal?.aborted) break;
      if (pieces.length > 0) {
        yield pieces.shift()!;
        continue;
      }
      if (finished) break;
      await new Promise<void>((r) => wake = r);
      wake = undefined;
    }
    if (failure) throw failure;
  } finally {
    stopped = true;
    await done;
  }
}
