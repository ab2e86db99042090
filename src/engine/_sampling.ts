/**
 * Validation of the sampling options that generation calls and batch requests share.
 *
 * @module
 */

import type { Sampling } from "./_plan.ts";

/** The sampling options, as the caller gave them. */
export interface SamplingOptions {
  temperature?: number;
  topK?: number;
  topP?: number;
  eosId?: number;
  seed?: number;
}

/**
 * Checks sampling options.
 *
 * @param o The options.
 * @param vocab The vocabulary size.
 * @param what What the caller was about to do, for messages.
 * @returns The sampler settings, or undefined for greedy decoding.
 */
export function checkSampling(o: SamplingOptions, vocab: number, what: string): Sampling | undefined {
  const t = o.temperature ?? 0;
  if (typeof t !== "number" || !Number.isFinite(t) || t < 0) {
    throw new RangeError(`Cannot ${what}: temperature '${o.temperature}' must be 0 (greedy) or a positive number`);
  }
  if (t > 0 && t < 1e-6) {
    throw new RangeError(
      `Cannot ${what}: temperature '${t}' is below 1e-6, where float32 logits divided by it overflow; use 0 for greedy decoding`,
    );
  }
  if (t === 0 && (o.topK !== undefined || o.topP !== undefined)) {
    throw new RangeError(
      `Cannot ${what}: ${
        o.topK !== undefined ? "topK" : "topP"
      } has no effect in greedy decoding; pass a temperature above 0 to sample`,
    );
  }
  if (o.topK !== undefined && (!Number.isInteger(o.topK) || o.topK < 1)) {
    throw new RangeError(`Cannot ${what}: topK '${o.topK}' must be an integer of at least 1`);
  }
  if (o.topP !== undefined && (typeof o.topP !== "number" || !(o.topP > 0 && o.topP <= 1))) {
    throw new RangeError(`Cannot ${what}: topP '${o.topP}' must be in (0, 1]`);
  }
  if (o.topP !== undefined && o.topP < 1e-6) {
    throw new RangeError(
      `Cannot ${what}: topP '${o.topP}' is below 1e-6, where float32 cannot tell it from 0; use topK: 1 for the most likely token`,
    );
  }
  if (o.eosId !== undefined && (!Number.isInteger(o.eosId) || o.eosId < 0 || o.eosId >= vocab)) {
    throw new RangeError(`Cannot ${what}: eosId '${o.eosId}' is outside [0, ${vocab})`);
  }
  if (o.seed !== undefined && (!Number.isSafeInteger(o.seed) || o.seed < 0)) {
    throw new RangeError(`Cannot ${what}: seed '${o.seed}' must be a non-negative integer`);
  }
  if (t > 0 && o.seed !== undefined && o.seed > 0xffffffff) {
    throw new RangeError(`Cannot ${what}: seed '${o.seed}' is over the sampler's 32 bits, use one below 4294967296`);
  }
  if (t === 0) return undefined;
  return {
    temperature: t,
    topK: o.topK !== undefined && o.topK < vocab ? o.topK : 0,
    topP: o.topP ?? 1,
    seed: o.seed ?? crypto.getRandomValues(new Uint32Array(1))[0],
  };
}
