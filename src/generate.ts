/**
 * Text generation: the book's `generate_text_simple`, with its steps on the GPU.
 *
 * @module
 */

import { checkBatch, type GPTModel, type StepPlan } from "./model.ts";

function checkCounts(maxNewTokens: unknown, contextSize: unknown, model: GPTModel, what: string): void {
  if (typeof maxNewTokens !== "number" || !Number.isInteger(maxNewTokens) || maxNewTokens < 0) {
    throw new RangeError(`Cannot ${what}: maxNewTokens '${maxNewTokens}' must be a non-negative integer`);
  }
  if (typeof contextSize !== "number" || !Number.isInteger(contextSize) || contextSize < 1) {
    throw new RangeError(`Cannot ${what}: contextSize '${contextSize}' must be a positive integer`);
  }
  void model;
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
  checkCounts(maxNewTokens, contextSize, model, what);
  const plan: StepPlan[] = [];
  for (let s = 0; s < maxNewTokens; s++) {
    const n = T + s;
    const w = Math.min(n, contextSize);
    plan.push({ T: w, start: n - w, pos0: 0 });
  }
  const widest = Math.max(0, ...plan.map((p) => p.T));
  if (widest > model.config.context_length) {
    throw new RangeError(
      `Cannot generate: contextSize ${contextSize} lets a step see ${widest} tokens, more than the model's context_length ${model.config.context_length}; pass a contextSize of at most ${model.config.context_length}`,
    );
  }
  if (maxNewTokens === 0) return idx.map((r) => r.slice());
  const L = T + maxNewTokens;
  const out = await model.runPlan(flat, B, L, plan);
  return toRows(out, B, L);
}

/** Options for {@linkcode generate}. */
export interface GenerateOptions {
  /** How many tokens to append to each row. */
  maxNewTokens: number;
  /** How many trailing tokens each step sees (default the model's `context_length`). */
  contextSize?: number;
}

/**
 * The steps of a generation with a key/value cache: prefill the prompt's window once, then one
 * token per step attending over the cache. Once a row outgrows `contextSize` the window slides,
 * every position shifts, and each later step re-runs the whole window (a prefill of
 * `contextSize` tokens) so the result stays identical to {@linkcode generateTextSimple}.
 *
 * @param T0 Prompt length.
 * @param maxNewTokens New tokens.
 * @param contextSize Window size.
 * @returns One entry per step.
 */
export function cachedPlan(T0: number, maxNewTokens: number, contextSize: number): StepPlan[] {
  const plan: StepPlan[] = [];
  for (let s = 0; s < maxNewTokens; s++) {
    const n = T0 + s;
    if (s > 0 && n <= contextSize) plan.push({ T: 1, start: n - 1, pos0: n - 1 });
    else {
      const w = Math.min(n, contextSize);
      plan.push({ T: w, start: n - w, pos0: 0 });
    }
  }
  return plan;
}

/**
 * Greedy generation with a key/value cache: the prompt is run once, then each new token costs
 * one position of attention over the cache instead of a pass over the whole context. The ids are
 * identical to {@linkcode generateTextSimple} with the same `maxNewTokens` and `contextSize`,
 * including past the context, where the window slides and each step re-runs the window.
 *
 * @param model The model.
 * @param idx Prompt token ids, `[batch, tokens]`, every row the same length.
 * @param options `maxNewTokens` (required) and `contextSize` (default `context_length`).
 * @returns Each row with the new ids appended.
 * @throws {TypeError} On a ragged or malformed batch.
 * @throws {RangeError} On a bad id, count or context size.
 * @example
 * ```ts ignore
 * const out = await generate(model, [[15496, 11, 314, 716]], { maxNewTokens: 128 });
 * ```
 */
export async function generate(model: GPTModel, idx: number[][], options: GenerateOptions): Promise<number[][]> {
  const what = "generate";
  if (options === null || typeof options !== "object") {
    throw new TypeError(`Cannot ${what}: options must be an object like { maxNewTokens: 32 }`);
  }
  const { B, T, flat } = checkBatch(idx, model.config.vocab_size, what);
  const contextSize = options.contextSize ?? model.config.context_length;
  checkCounts(options.maxNewTokens, contextSize, model, what);
  if (contextSize > model.config.context_length && T + options.maxNewTokens - 1 > model.config.context_length) {
    throw new RangeError(
      `Cannot generate: contextSize ${contextSize} is more than the model's context_length ${model.config.context_length}; pass a contextSize of at most ${model.config.context_length}`,
    );
  }
  if (options.maxNewTokens === 0) return idx.map((r) => r.slice());
  const L = T + options.maxNewTokens;
  const out = await model.runPlan(flat, B, L, cachedPlan(T, options.maxNewTokens, contextSize));
  return toRows(out, B, L);
}
