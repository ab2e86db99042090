/**
 * The WebGPU device and how weights are stored on it.
 *
 * @module
 */

export type { WeightDType } from "./weights.ts";
export { DeviceLostError, releaseGpu, WebGPUUnavailableError } from "./device.ts";
