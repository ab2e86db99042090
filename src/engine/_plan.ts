/**
 * Generation plans: which window of the token rows each step runs, at which cache position, and
 * how a call samples and reads back. The runner (`_runner.ts`) runs them.
 *
 * @module
 */

/** Sampling settings of a call (validated by the caller). */
export interface Sampling {
  /** Softmax temperature, above 0. */
  temperature: number;
  /** Keep the k largest logits (ties included); 0 keeps all. */
  topK: number;
  /** Keep the smallest most-probable set whose mass reaches this; 1 keeps all. */
  topP: number;
  /** Seed of the draws. */
  seed: number;
}

/** How a call runs: sampling, and when to read the rows back. */
export interface RunOptions {
  /** Sample instead of taking the argmax. */
  sampling?: Sampling;
  /** After which steps (by count done) to read the rows back (default: only at the end). */
  readAfter?: (stepsDone: number) => boolean;
  /** Called after each readback with the token rows `[B, L]` so far and the steps done; false stops. */
  onChunk?: (rows: Uint32Array, stepsDone: number) => boolean | Promise<boolean>;
}

/** One step of a generation plan: which window of the token rows to run. */
export interface StepPlan {
  /** Tokens per row in this step. */
  T: number;
  /** Index in the token row of the first token. */
  start: number;
  /** Position (and cache slot) of the first token: 0 re-runs the window, more continues the cache. */
  pos0: number;
}

/**
 * The steps of the book's `generate_text_simple`: each re-runs the last `contextSize` tokens.
 *
 * @param T0 Prompt length.
 * @param maxNewTokens New tokens.
 * @param contextSize Window size.
 * @returns One entry per step.
 */
export function simplePlan(T0: number, maxNewTokens: number, contextSize: number): StepPlan[] {
  const plan: StepPlan[] = [];
  for (let s = 0; s < maxNewTokens; s++) {
    const n = T0 + s;
    const w = Math.min(n, contextSize);
    plan.push({ T: w, start: n - w, pos0: 0 });
  }
  return plan;
}

/**
 * The steps of a generation with a key/value cache: prefill the prompt's window once, then one
 * token per step attending over the cache. Once a row outgrows `contextSize` the window slides,
 * every position shifts, and each later step re-runs the whole window (a prefill of
 * `contextSize` tokens) so the result stays identical to `generateTextSimple`.
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
