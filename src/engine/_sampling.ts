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

/** A sampling option that can break a rule. */
export type SamplingField = "temperature" | "topK" | "topP" | "eosId" | "seed";

/**
 * A broken sampling rule: the option, its value (absent where the value does not matter) and the
 * rest of the sentence. Each edge words it with its own names: the library as
 * `topK '0' must be ...`, the command line as `--top-k '0' must be ...`, the server as a 400 whose
 * `param` is `top_k`.
 */
export interface SamplingProblem {
  /** The option. */
  field: SamplingField;
  /** Its value, when the sentence names it. */
  value?: unknown;
  /** What is wrong and what to do: `must be ...`, `is below ...`, `has no effect ...`. */
  rule: string;
}

/**
 * The first sampling rule the options break, or undefined when they keep them all. The one place
 * these rules are written.
 *
 * @param o The options.
 * @param vocab The vocabulary size (for `eosId`).
 * @returns The problem, if there is one.
 */
export function samplingProblem(o: SamplingOptions, vocab: number): SamplingProblem | undefined {
  const t = o.temperature ?? 0;
  if (typeof t !== "number" || !Number.isFinite(t) || t < 0) {
    return { field: "temperature", value: o.temperature, rule: "must be 0 (greedy) or a positive number" };
  }
  if (t > 0 && t < 1e-6) {
    return {
      field: "temperature",
      value: t,
      rule: "is below 1e-6, where float32 logits divided by it overflow; use 0 for greedy decoding",
    };
  }
  if (t === 0 && (o.topK !== undefined || o.topP !== undefined)) {
    return {
      field: o.topK !== undefined ? "topK" : "topP",
      rule: "has no effect in greedy decoding; pass a temperature above 0 to sample",
    };
  }
  if (o.topK !== undefined && (!Number.isInteger(o.topK) || o.topK < 1)) {
    return { field: "topK", value: o.topK, rule: "must be an integer of at least 1" };
  }
  if (o.topP !== undefined && (typeof o.topP !== "number" || !(o.topP > 0 && o.topP <= 1))) {
    return { field: "topP", value: o.topP, rule: "must be in (0, 1]" };
  }
  if (o.topP !== undefined && o.topP < 1e-6) {
    return {
      field: "topP",
      value: o.topP,
      rule: "is below 1e-6, where float32 cannot tell it from 0; use a temperature of 0 for the most likely token",
    };
  }
  if (o.eosId !== undefined && (!Number.isInteger(o.eosId) || o.eosId < 0 || o.eosId >= vocab)) {
    return { field: "eosId", value: o.eosId, rule: `is outside [0, ${vocab})` };
  }
  if (o.seed !== undefined && (!Number.isSafeInteger(o.seed) || o.seed < 0)) {
    return { field: "seed", value: o.seed, rule: "must be a non-negative integer" };
  }
  if (t > 0 && o.seed !== undefined && o.seed > 0xffffffff) {
    return { field: "seed", value: o.seed, rule: "is over the sampler's 32 bits, use one below 4294967296" };
  }
  return undefined;
}

/**
 * A problem as one sentence, with the option under the name the caller uses.
 *
 * @param p The problem.
 * @param name The option's name where the user wrote it (`topK`, `--top-k`, `'top_k'`).
 * @returns `name 'value' rule`, or `name rule` when the value does not matter.
 */
export function describeSampling(p: SamplingProblem, name: string = p.field): string {
  return "value" in p ? `${name} '${p.value}' ${p.rule}` : `${name} ${p.rule}`;
}

/**
 * Checks sampling options.
 *
 * @param o The options.
 * @param vocab The vocabulary size.
 * @param what What the caller was about to do, for messages.
 * @returns The sampler settings, or undefined for greedy decoding.
 * @throws {RangeError} When a rule of {@linkcode samplingProblem} is broken.
 */
export function checkSampling(o: SamplingOptions, vocab: number, what: string): Sampling | undefined {
  const p = samplingProblem(o, vocab);
  if (p) throw new RangeError(`Cannot ${what}: ${describeSampling(p)}`);
  const t = o.temperature ?? 0;
  if (t === 0) return undefined;
  return {
    temperature: t,
    topK: o.topK !== undefined && o.topK < vocab ? o.topK : 0,
    topP: o.topP ?? 1,
    seed: o.seed ?? crypto.getRandomValues(new Uint32Array(1))[0],
  };
}
