/**
 * The options of `generate` and `stream`, apart from the functions, so that the ragged path can
 * take them without importing `generate.ts`.
 *
 * @module
 */

/** Options for {@linkcode generate}. */
export interface GenerateOptions {
  /** How many tokens to append to each row (at most; fewer when a row meets `eosId`). */
  maxNewTokens: number;
  /** How many trailing tokens each step sees (default the model's `context_length`). */
  contextSize?: number;
  /** Softmax temperature; 0 (the default) is greedy decoding. */
  temperature?: number;
  /** Sample only among the k largest logits (ties with the k-th included). */
  topK?: number;
  /** Sample only among the smallest set of most probable tokens whose probability reaches topP, in (0, 1]. */
  topP?: number;
  /** A token that ends a row: generation for that row stops before appending it. */
  eosId?: number;
  /** Seed of the sampler, 0 to 2^32 - 1: same seed, model, prompt and options give the same ids (default: random). */
  seed?: number;
  /**
   * Called with the count of new tokens so far and the milliseconds since the call began, after the
   * first step (the prompt's prefill), every 16 steps and at the end. Each such report waits for
   * the GPU (about 11.5 ms in Deno), so leave it out when only the result matters.
   */
  onProgress?: (newTokens: number, elapsedMs: number) => void;
  /**
   * Stops the call: the steps already submitted finish (at most 16 more) and `generate` rejects
   * with the signal's reason; the model stays usable. (`stream` ends its iteration instead.)
   */
  signal?: AbortSignal;
}
