/**
 * `generate` on rows of different lengths: each row is a request of a {@linkcode Batcher}, so the
 * rows share decoding steps and each gets what it would get alone (row i draws as row i of an
 * equal-length batch).
 *
 * @module
 */

import type { GPTModel } from "./model.ts";
import { Batcher } from "./batcher.ts";
import { checkContext } from "../engine/_context.ts";
import type { GenerateOptions } from "./_generate_options.ts";

/**
 * Generates for rows of different lengths with continuous batching.
 *
 * @param model The model.
 * @param idx The rows.
 * @param o The options (their values checked by the batcher, once).
 * @returns Each row with its new ids.
 * @throws {RangeError} When a row's prompt plus `maxNewTokens` does not fit the context.
 */
export async function generateRagged(model: GPTModel, idx: number[][], o: GenerateOptions): Promise<number[][]> {
  const ctx = Math.min(o.contextSize ?? Infinity, model.config.context_length);
  const longest = Math.max(...idx.map((r) => r.length));
  if (o.maxNewTokens === 0) return idx.map((r) => [...r]);
  // rows of different lengths run with continuous batching, where each prompt must fit with its new tokens
  checkContext(
    "generate",
    longest,
    o.maxNewTokens,
    ctx,
    "that is the longest row; generate fewer tokens or give rows of one length",
  );
  o.signal?.throwIfAborted();
  const seed = o.temperature ? o.seed ?? crypto.getRandomValues(new Uint32Array(1))[0] : o.seed;
  const batcher = new Batcher(model, { maxBatch: Math.min(idx.length, 64), maxQueue: idx.length });
  try {
    // the options are checked once for every row; row i draws as row i of an equal-length batch
    const reqs = batcher.addAll(idx, {
      maxNewTokens: o.maxNewTokens,
      temperature: o.temperature,
      topK: o.topK,
      topP: o.topP,
      eosId: o.eosId,
      seed,
      signal: o.signal,
    });
    const t0 = performance.now();
    const results = await Promise.all(reqs.map((r) => r.result));
    o.signal?.throwIfAborted();
    // one report, at the end: the rows advance at their own pace
    o.onProgress?.(Math.max(...results.map((r) => r.ids.length)), performance.now() - t0);
    return idx.map((row, i) => [...row, ...results[i].ids]);
  } finally {
    await batcher.close();
  }
}
