/**
 * What a model made with `trainable: true` carries besides its inference weights: the training
 * state (parameters in PyTorch's layout, gradients, kernels), and its checkpoints.
 *
 * @module
 */

import type { GPTConfig } from "../weights/config.ts";
import type { InputTensor, ModelWeights } from "../weights/model_weights.ts";
import { BufferUsage, MapMode } from "../gpu/flags.ts";
import { TrainParams } from "../engine/training/params.ts";
import { SafetensorsFile } from "../weights/safetensors.ts";
import { TrainState } from "../engine/training/state.ts";
import { openWriter, remove, rename } from "../platform/files.ts";

/** A trainable model's training side. */
export interface Training {
  /** The GPU state. */
  state: TrainState;
  /** The inference weights, refreshed after every optimizer step. */
  weights: ModelWeights;
  /** Optimizer steps taken (for AdamW's bias correction). */
  steps: number;
  /** True while an optimizer owns the model. */
  optimizer?: object;
}

const trainings = new WeakMap<object, Training>();

/**
 * Ties a model to its training side.
 *
 * @param model The model.
 * @param t Its training side.
 */
export function attachTraining(model: object, t: Training): void {
  trainings.set(model, t);
}

/**
 * The training side of a model.
 *
 * @param model The model.
 * @param what What the caller was about to do, for the error.
 * @returns Its training side.
 * @throws {TypeError} When the model was not made trainable.
 */
export function trainingOf(model: object, what = "train the model"): Training {
  const t = trainings.get(model);
  if (!t) {
    throw new TypeError(
      `Cannot ${what}: the model was made without { trainable: true }; create or load it with trainable: true`,
    );
  }
  return t;
}

/**
 * Allocates trainable parameters and passes each tensor through, writing it into them first.
 *
 * @param device The device.
 * @param cfg The configuration.
 * @param options Vocabulary rows per chunk, the tied head.
 * @returns The parameters, and a function that wraps the tensor stream.
 */
export function trainableParams(
  device: GPUDevice,
  cfg: Required<GPTConfig>,
  options: { chunkRows: number; tied: boolean; dtype: string },
): { params: TrainParams; tee: (t: Iterable<InputTensor> | AsyncIterable<InputTensor>) => AsyncIterable<InputTensor> } {
  if (options.dtype !== "f32") {
    throw new RangeError(`Cannot make a trainable model with dtype '${options.dtype}': training needs "f32"`);
  }
  if (cfg.emb_dim % 4 !== 0) {
    throw new RangeError(`Cannot make a trainable model: emb_dim ${cfg.emb_dim} is not a multiple of 4`);
  }
  const params = new TrainParams(device, cfg, options);
  async function* tee(tensors: Iterable<InputTensor> | AsyncIterable<InputTensor>): AsyncIterable<InputTensor> {
    for await (const t of tensors) {
      if (/^trf_blocks\.\d+\.att\.(W_\w+|qkv)\.bias$/.test(t.name) && !cfg.qkv_bias) {
        throw new RangeError(`Cannot train tensor '${t.name}': the configuration has qkv_bias false; set it true`);
      }
      params.write(t);
      yield t;
    }
  }
  return { params, tee };
}

/**
 * Makes a model's training state once its parameters are written, and ties it to the model.
 *
 * @param model The model.
 * @param parts The device, the parameters, the inference weights they refresh.
 * @param options The runner's GPU wait; the seed of dropout's masks.
 */
export async function startTraining(
  model: object,
  parts: { device: GPUDevice; params: TrainParams; weights: ModelWeights },
  options: { wait: <T>(p: Promise<T>) => Promise<T>; seed: number },
): Promise<void> {
  const state = await TrainState.create(parts.device, parts.params, options);
  attachTraining(model, { state, weights: parts.weights, steps: 0 });
}

/**
 * Whether a model was made trainable.
 *
 * @param model The model.
 * @returns True with `trainable: true`.
 */
export function isTrainable(model: object): boolean {
  return trainings.has(model);
}

/**
 * Reads floats of a buffer back.
 *
 * @param device The device.
 * @param buffer The buffer.
 * @param offset The first float.
 * @param count How many.
 * @returns The values.
 */
export async function readFloats(
  device: GPUDevice,
  buffer: GPUBuffer,
  offset: number,
  count: number,
): Promise<Float32Array> {
  const staging = device.createBuffer({ size: count * 4, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(buffer, offset * 4, staging, 0, count * 4);
  device.queue.submit([enc.finish()]);
  try {
    await staging.mapAsync(MapMode.READ);
    return new Float32Array(staging.getMappedRange().slice(0));
  } finally {
    staging.destroy();
  }
}

/**
 * Reads one of the book's `state_dict` tensors (or its gradient) back from the GPU.
 *
 * @param device The device.
 * @param params The parameters.
 * @param name The tensor's name, e.g. `trf_blocks.0.att.W_query.weight`.
 * @param grad Read the gradient instead.
 * @returns Its shape and values, or undefined for an unknown name.
 */
export async function readTensor(
  device: GPUDevice,
  params: TrainParams,
  name: string,
  grad = false,
): Promise<{ shape: number[]; data: Float32Array } | undefined> {
  const t = params.stateDict().find((e) => e.name === name);
  if (!t) return undefined;
  const data = new Float32Array(t.shape.reduce((a, b) => a * b, 1));
  let at = 0;
  for (const part of t.parts) {
    data.set(await readFloats(device, grad ? part.param.grad : part.param.buffer, part.offset, part.size), at);
    at += part.size;
  }
  return { shape: t.shape, data };
}

/** A tensor to write: its name, shape, and how to get its values. */
interface TensorOut {
  name: string;
  shape: number[];
  read: () => Promise<Uint8Array>;
}

/**
 * Writes tensors as an F32 safetensors file, one at a time, into a file beside `path` renamed over
 * it when complete: a crash leaves the old file or the new one.
 */
async function writeAtomically(path: string, entries: TensorOut[], metadata: Record<string, string>): Promise<void> {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let off = 0;
  for (const e of entries) {
    const bytes = e.shape.reduce((a, b) => a * b, 1) * 4;
    header[e.name] = { dtype: "F32", shape: e.shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const tmp = `${path}.partial-${Math.random().toString(36).slice(2, 10)}`;
  const w = await openWriter(tmp, false);
  try {
    const head = new Uint8Array(8 + json.length);
    new DataView(head.buffer).setBigUint64(0, BigInt(json.length), true);
    head.set(new TextEncoder().encode(json), 8);
    await w.write(head);
    for (const e of entries) await w.write(await e.read());
    await w.close();
    await rename(tmp, path);
  } catch (e) {
    await w.close().catch(() => {});
    await remove(tmp).catch(() => {});
    throw e;
  }
}

const bytesOf = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * Writes the parameters as a safetensors file under the book's `state_dict` names (F32), with the
 * configuration in `__metadata__.config`, atomically.
 *
 * @param device The device.
 * @param params The parameters.
 * @param path The file to write.
 */
export async function saveCheckpoint(device: GPUDevice, params: TrainParams, path: string): Promise<void> {
  const entries: TensorOut[] = params.stateDict().map((e) => ({
    name: e.name,
    shape: e.shape,
    read: async () => {
      const out = new Float32Array(e.shape.reduce((a, b) => a * b, 1));
      let at = 0;
      for (const part of e.parts) {
        out.set(await readFloats(device, part.param.buffer, part.offset, part.size), at);
        at += part.size;
      }
      return bytesOf(out);
    },
  }));
  // the book's attention registers its causal mask as a buffer: load_state_dict(strict=True) wants it
  const T = params.cfg.context_length;
  for (let l = params.cfg.n_layers - 1; l >= 0; l--) {
    const at = entries.findIndex((e) => e.name === `trf_blocks.${l}.att.out_proj.weight`);
    entries.splice(at, 0, {
      name: `trf_blocks.${l}.att.mask`,
      shape: [T, T],
      read: () => Promise.resolve(causalMask(T)),
    });
  }
  await writeAtomically(path, entries, { config: JSON.stringify(params.cfg), format: "pt" });
}

/** AdamW's settings and step count, as an optimizer state file holds them. */
export interface OptimizerState {
  step: number;
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

/**
 * Writes AdamW's running averages (`exp_avg.NAME`, `exp_avg_sq.NAME` for each parameter tensor) and
 * its settings and step count (in `__metadata__`), atomically.
 *
 * @param device The device.
 * @param state The training state.
 * @param settings The step count and hyperparameters.
 * @param path The file.
 */
export async function saveOptimizer(
  device: GPUDevice,
  state: TrainState,
  settings: OptimizerState,
  path: string,
): Promise<void> {
  const entries = state.moments().flatMap(({ param, m, v }) =>
    ([["exp_avg", m], ["exp_avg_sq", v]] as const).map(([kind, buffer]) => ({
      name: `${kind}.${param.name}`,
      shape: [param.size],
      read: async () => bytesOf(await readFloats(device, buffer, 0, param.size)),
    }))
  );
  await writeAtomically(path, entries, { optimizer: JSON.stringify({ type: "AdamW", ...settings }) });
}

/**
 * Reads a file {@linkcode saveOptimizer} wrote into the training state's running averages.
 *
 * @param device The device.
 * @param state The training state.
 * @param path The file.
 * @returns The step count and hyperparameters it holds.
 * @throws {Error} When the file is not an AdamW state of this model's parameters.
 */
export async function loadOptimizer(device: GPUDevice, state: TrainState, path: string): Promise<OptimizerState> {
  // no `using` here: the web build runs in Node 20, which lacks it
  const file = await SafetensorsFile.open(path);
  try {
    const meta = file.metadata.optimizer ? JSON.parse(file.metadata.optimizer) : undefined;
    if (meta?.type !== "AdamW") {
      throw new Error(`Cannot load the optimizer state: '${path}' is not one (save it with optimizer.save)`);
    }
    const targets = state.moments().flatMap(({ param, m, v }) =>
      ([["exp_avg", m], ["exp_avg_sq", v]] as const).map(([kind, buffer]) => ({
        name: `${kind}.${param.name}`,
        param,
        buffer,
      }))
    );
    // every tensor checked before any is written: a wrong file changes nothing
    for (const { name, param } of targets) {
      if (file.tensors.get(name)?.shape.join() !== String(param.size)) {
        throw new Error(
          `Cannot load the optimizer state: '${path}' has no ${name} of ${param.size} values; it belongs to another model`,
        );
      }
    }
    for (const { name, buffer } of targets) {
      device.queue.writeBuffer(buffer, 0, (await file.read(name)) as Float32Array<ArrayBuffer>);
    }
    const { step, lr, betas, eps, weightDecay } = meta;
    return { step, lr, betas, eps, weightDecay };
  } finally {
    file.close();
  }
}

/** `torch.triu(torch.ones(T, T), diagonal=1)` as float32 bytes. */
function causalMask(T: number): Uint8Array {
  const m = new Float32Array(T * T);
  for (let i = 0; i < T; i++) m.fill(1, i * T + i + 1, (i + 1) * T);
  return new Uint8Array(m.buffer);
}
