/**
 * Configurations, weights files, parameter drawing and the Hugging Face hub.
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
} from "./config.ts";
export type { InputTensor } from "./model_weights.ts";
export type { NamedTensor } from "./init.ts";
export { WeightsError } from "./model_weights.ts";
export { type DownloadProgress, HubError, type HubOptions } from "./hub.ts";
export { SafetensorsError } from "./safetensors.ts";
export { huggingFaceConfig, huggingFaceName, type WeightsInput } from "./loader.ts";
export { BROWSER_CACHE } from "./hub_browser.ts";
