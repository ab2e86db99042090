/**
 * Uploading a model's named tensors to the GPU as they arrive, inside error scopes, freeing
 * everything on failure.
 *
 * @module
 */

import type { GPTConfig } from "../weights/config.ts";
import { drainWrites, settleWrites, type WeightDType } from "../gpu/weights.ts";
import { type InputTensor, type ModelWeights, WeightBuilder } from "../weights/model_weights.ts";

/**
 * Uploads named tensors as they arrive; frees what it made on failure.
 *
 * @param device The device.
 * @param model The configuration, storage type, vocabulary rows per chunk and whether the head is tied.
 * @param tensors The parameters.
 * @param owned Receives every buffer made.
 * @returns The weights on the GPU.
 */
export async function uploadWeights(
  device: GPUDevice,
  model: { cfg: Required<GPTConfig>; dtype: WeightDType; chunkRows: number; tiedHead: boolean },
  tensors: Iterable<InputTensor> | AsyncIterable<InputTensor>,
  owned: GPUBuffer[],
): Promise<ModelWeights> {
  const { cfg, dtype, chunkRows } = model;
  device.pushErrorScope("out-of-memory");
  device.pushErrorScope("validation");
  let weights: ModelWeights;
  try {
    const builder = new WeightBuilder(device, cfg, dtype, chunkRows, (b) => owned.push(b));
    for await (const t of tensors) {
      builder.add(t);
      await drainWrites(device);
    }
    await settleWrites(device);
    weights = builder.finish(model.tiedHead);
  } catch (e) {
    await settleWrites(device).catch(() => {});
    await device.popErrorScope();
    await device.popErrorScope();
    for (const b of owned) b.destroy();
    throw e;
  }
  const validation = await device.popErrorScope();
  const oom = await device.popErrorScope();
  if (validation || oom) {
    for (const b of owned) b.destroy();
    const total = owned.reduce((s, b) => s + b.size, 0);
    throw new RangeError(
      `Cannot create the model: the GPU refused its ${total} bytes of weights (${(oom ?? validation)!.message})`,
    );
  }
  return weights;
}
