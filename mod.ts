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
  type DownloadProgress,
  GPT_CONFIG_124M,
  GPT_CONFIG_1558M,
  GPT_CONFIG_355M,
  GPT_CONFIG_774M,
  type GPTConfig,
  HubError,
  type HubOptions,
  type InputTensor,
  type NamedTensor,
  SafetensorsError,
  validateConfig,
  WeightsError,
} from "./src/weights/mod.ts";
export {
  type BatchChunk,
  Batcher,
  type BatcherOptions,
  BatchQueueFullError,
  BatchRequest,
  type BatchRequestOptions,
  type BatchResult,
  compareModels,
  type ComparisonResult,
  type CreateOptions,
  type EvaluateOptions,
  type FinishReason,
  type FromTensorsOptions,
  generate,
  type GenerateOptions,
  generateTextSimple,
  GPTModel,
  type LoadOptions,
  perplexity,
  type PerplexityResult,
  type PretrainedOptions,
  stream,
  type StreamOptions,
  type TokenLogprobs,
} from "./src/model/mod.ts";
export {
  type ArgmaxKind,
  type AttentionKind,
  type BackendOptions,
  type BackendProfile,
  type HeadScreenMode,
  type MatmulFamily,
} from "./src/engine/mod.ts";
export { DeviceLostError, WebGPUUnavailableError, type WeightDType } from "./src/gpu/mod.ts";
export {
  type BatchStats,
  type CompletionServer,
  type ModelSpec,
  serve,
  type ServeLimits,
  type ServeOptions,
} from "./src/serve/mod.ts";
export { decode, encode, END_OF_TEXT, TextStreamer } from "./src/text/mod.ts";
export { VERSION } from "./src/cli/mod.ts";

import { main } from "./src/cli/cli.ts";

if (import.meta.main) {
  Deno.exitCode = await main();
}
