/**
 * A GPT text generator for Deno on WebGPU: the `GPTModel` of "Build a Large Language Model
 * (From Scratch)", with hand-written WGSL kernels, seed-exact with PyTorch.
 *
 * ```ts ignore
 * import { GPT_CONFIG_124M, GPTModel, generateTextSimple, encode, decode } from "./mod.ts";
 * using model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123 });
 * const out = await generateTextSimple(model, [encode("Hello, I am")], 6, GPT_CONFIG_124M.context_length);
 * console.log(decode(out[0])); // Hello, I am Featureiman Byeswickattribute argue
 * ```
 *
 * Run it: `deno run mod.ts "Hello, I am"` (no permissions needed). Utilities have subpath exports:
 * `./safetensors`, `./torch-random` and `./reference` (the model in plain TypeScript).
 *
 * @module
 */

export {
  GPT_CONFIG_124M,
  GPT_CONFIG_1558M,
  GPT_CONFIG_355M,
  GPT_CONFIG_774M,
  type GPTConfig,
  validateConfig,
} from "./src/config.ts";
export {
  type CreateOptions,
  type FromTensorsOptions,
  GPTModel,
  type LoadOptions,
  type PretrainedOptions,
} from "./src/model.ts";
export type {
  ArgmaxKind,
  AttentionKind,
  BackendOptions,
  BackendProfile,
  HeadScreenMode,
  MatmulFamily,
} from "./src/backend.ts";
export type { WeightDType } from "./src/gpu/weights.ts";
export type { InputTensor } from "./src/model_weights.ts";
export type { NamedTensor } from "./src/init.ts";
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
} from "./src/batcher.ts";
export { type CompletionServer, type ModelSpec, serve, type ServeLimits, type ServeOptions } from "./src/server.ts";
export type { BatchStats } from "./src/_serving.ts";
export { generate, type GenerateOptions, generateTextSimple, stream, type StreamOptions } from "./src/generate.ts";
export {
  compareModels,
  type ComparisonResult,
  type EvaluateOptions,
  perplexity,
  type PerplexityResult,
} from "./src/evaluate.ts";
export { decode, encode, END_OF_TEXT, TextStreamer } from "./src/tokenizer.ts";
export { DeviceLostError, WebGPUUnavailableError } from "./src/gpu/device.ts";
export { WeightsError } from "./src/model_weights.ts";
export { type DownloadProgress, HubError, type HubOptions } from "./src/hub.ts";
export { SafetensorsError } from "./src/safetensors.ts";
export { VERSION } from "./src/cli.ts";

import { main } from "./src/cli.ts";

if (import.meta.main) {
  Deno.exitCode = await main();
}
