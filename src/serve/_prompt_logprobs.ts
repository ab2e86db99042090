/**
 * The log-probabilities of a prompt's own tokens (OpenAI's `echo` with `logprobs`): for each
 * position after the first, the token's log-probability under the logits of the position before,
 * and the `n` most likely tokens there, found in one pass over the vocabulary (ties: lower id first).
 *
 * @module
 */

/** One prompt's log-probabilities: entry `t - 1` is about token `t`. */
export interface PromptLogprobs {
  /** The log-probability of each token after the first. */
  logprobs: number[];
  /** The `n` most likely tokens at each of those positions, most likely first. */
  top: { id: number; logprob: number }[][];
}

/** Rows between two looks at the signal (and two turns of the event loop). */
const ROWS_PER_TURN = 32;

/**
 * The `n` largest entries of a row, largest first (ties: lower index first), without sorting it.
 *
 * @param row The values.
 * @param n How many (at most the row's length).
 * @returns Their indices.
 */
export function topIndices(row: Float32Array, n: number): number[] {
  const top: number[] = [];
  for (let i = 0; i < row.length; i++) {
    const v = row[i];
    if (top.length === n && !(v > row[top[n - 1]])) continue;
    let at = top.length === n ? n - 1 : top.length;
    // a later index goes after an equal value
    while (at > 0 && v > row[top[at - 1]]) at--;
    if (top.length < n) top.push(0);
    for (let k = top.length - 1; k > at; k--) top[k] = top[k - 1];
    top[at] = i;
  }
  return top;
}

/**
 * The log-probabilities of a prompt's tokens from its logits.
 *
 * @param logits The logits of every position, `[ids.length, vocab]`.
 * @param ids The prompt.
 * @param n Alternatives per position (0 to 5).
 * @param signal Stops the work between rows (rejects with its reason).
 * @returns One entry per token after the first.
 */
export async function promptLogprobs(
  logits: Float32Array,
  ids: number[],
  n: number,
  signal?: AbortSignal,
): Promise<PromptLogprobs> {
  const V = logits.length / ids.length;
  const out: PromptLogprobs = { logprobs: [], top: [] };
  for (let t = 1; t < ids.length; t++) {
    if (t % ROWS_PER_TURN === 0) {
      await new Promise((r) => setTimeout(r, 0));
      signal?.throwIfAborted();
    }
    const row = logits.subarray((t - 1) * V, t * V);
    let m = -Infinity;
    for (let i = 0; i < V; i++) if (row[i] > m) m = row[i];
    let s = 0;
    for (let i = 0; i < V; i++) s += Math.exp(row[i] - m);
    const lse = m + Math.log(s);
    out.logprobs.push(row[ids[t]] - lse);
    out.top.push(topIndices(row, n).map((id) => ({ id, logprob: row[id] - lse })));
  }
  return out;
}
