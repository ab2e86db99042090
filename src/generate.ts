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
