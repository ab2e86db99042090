/**
 * `GPTModel`, generation, batching and evaluation.
 *
 * @module
 */

export {
  type CreateOptions,
  type FromTensorsOptions,
  GPTModel,
  type LoadOptions,
  type PretrainedOptions,
} from "./model.ts";
export {
  type BatchChunk,
  Batcher,
  type BatcherOptions,
  BatchQueueFullError,
  BatchRequest,
  type BatchRequestOptions,
  type BatchResult,
  type FinishReason,
  type TokenLogprobs,
} from "./batcher.ts";
export { generate, type GenerateOptions, generateTextSimple, stream, type StreamOptions } from "./generate.ts";
export {
  compareModels,
  type ComparisonResult,
  type EvaluateOptions,
  perplexity,
  type PerplexityResult,
} from "./evaluate.ts";
