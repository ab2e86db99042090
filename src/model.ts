/**
 * `GPTModel`: the book's GPT model with its weights and activations in WebGPU buffers.
 *
 * @module
 */

import { type GPTConfig, validateConfig } from "./config.ts";
import { seededParametersAsync } from "./init.ts";
import { DeviceLostError, getGpu, type GpuContext } from "./gpu/device.ts";
import { type KernelSpec, layoutOf, pipelineOf } from "./gpu/pipelines.ts";
import { drainWrites, roundUp, settleWrites, vocabChunkRows, type WeightDType } from "./gpu/weights.ts";
import { type InputTensor, type ModelWeights, WeightBuilder } from "./model_weights.ts";
import { openWeights } from "./loader.ts";
import {
  ARGMAX,
  ARGMAX_FINAL,
  ARGMAX_PART,
  ARGMAX_PARTS,
  ARGMAX_SERIAL,
  ATTENTION,
  ATTENTION_BLOCK,
  ATTENTION_SERIAL,
  EMBEDDING,
  EMBEDDING_F16,
  HEAD_MARK,
  HEAD_PICK,
  HEAD_QUANT,
  HEAD_QUANT_F16,
  HEAD_REFINE,
  HEAD_REFINE_F16,
  HEAD_ROUTE,
  HEAD_SCREEN,
  LAYER_NORM,
  LAYER_NORM_SERIAL,
  MATMUL,
  MATMUL_F16,
  MATMUL_WIDE,
  MATMUL_WIDE_F16,
  MATMUL_WIDE_XU,
  MATMUL_WIDE_XU_F16,
  MM_ADD,
  MM_BIAS,
  MM_GELU,
  MM_LN,
  MM_WIDE_COLS,
  MM_WIDE_ROWS,
  MM_X_UNIFORM_VEC4S,
  REFINE_INVOCATIONS,
  SAMPLE,
  SCREEN_GROUP,
  STEP_BYTES,
} from "../kernels/mod.ts";

/** Options for {@linkcode GPTModel.create}. */
export interface CreateOptions {
  /** Seed for `torch.manual_seed` (default 123). */
  seed?: number;
  /** Weight storage: `"f32"` (default, exact) or `"f16"` (half the memory and bandwidth). */
  dtype?: WeightDType;
  /** Largest storage binding to use, in bytes (default: the adapter's limit). */
  maxBindingBytes?: number;
}

/** Options for {@linkcode GPTModel.load}. */
export interface LoadOptions extends Pick<CreateOptions, "dtype" | "maxBindingBytes"> {
  /** A configuration to use instead of the file's `config.json` or `__metadata__.config`. */
  config?: GPTConfig;
  /** Called after each tensor is read, with bytes read so far and in all. */
  onProgress?: (done: number, total: number) => void;
}

/** Sampling settings for {@linkcode GPTModel.runPlan} (validated by the caller). */
export interface Sampling {
  /** Softmax temperature, above 0. */
  temperature: number;
  /** Keep the k largest logits (ties included); 0 keeps all. */
  topK: number;
  /** Keep the smallest most-probable set whose mass reaches this; 1 keeps all. */
  topP: number;
  /** Seed of the draws. */
  seed: number;
}

/** How {@linkcode GPTModel.runPlan} runs: sampling, and readbacks every `chunk` steps. */
export interface RunOptions {
  /** Sample instead of taking the argmax. */
  sampling?: Sampling;
  /** After which steps (by count done) to read the rows back (default: only at the end). */
  readAfter?: (stepsDone: number) => boolean;
  /**
   * Called after each chunk with the token rows `[B, L]` so far and the steps done; return
   * false to stop early.
   */
  onChunk?: (rows: Uint32Array, stepsDone: number) => boolean | Promise<boolean>;
}

/** One step of a generation plan: which window of the token rows to run. */
export interface StepPlan {
  /** Tokens per row in this step. */
  T: number;
  /** Index in the token row of the first token. */
  start: number;
  /** Position (and cache slot) of the first token: 0 re-runs the window, more continues the cache. */
  pos0: number;
}

interface Workspace {
  B: number;
  rows: number;
  L: number;
  cap: number;
  buffers: GPUBuffer[];
  tokens: GPUBuffer;
  step: GPUBuffer;
  logits: GPUBuffer;
  sampleParams: GPUBuffer;
  groups: {
    embed: GPUBindGroup[];
    layers: {
      ln1: GPUBindGroup;
      qkv: GPUBindGroup;
      attn: GPUBindGroup;
      proj: GPUBindGroup;
      ln2: GPUBindGroup;
      fc: GPUBindGroup;
      fc2: GPUBindGroup;
      /** The products with `x` from a uniform buffer (see {@linkcode xUniformFor}). */
      xu?: { qkv: GPUBindGroup; proj: GPUBindGroup; fc: GPUBindGroup; fc2: GPUBindGroup };
    }[];
    lnfLast: GPUBindGroup;
    lnfAll: GPUBindGroup;
    head: GPUBindGroup[];
    /** The head's products with `x` from a uniform buffer. */
    headXu?: GPUBindGroup[];
    argmax: GPUBindGroup;
    /** The second pass of the split greedy choice (GPUs). */
    argmaxFinal?: GPUBindGroup;
    sample: GPUBindGroup;
  };
  /** The screened greedy choice's buffers and bind groups, made on first use. */
  screen?: {
    buffers: GPUBuffer[];
    lo: GPUBuffer;
    count: GPUBuffer;
    /** Full-head dispatch sizes for this call's batch (written per call), and the route's copy. */
    table: GPUBuffer;
    args: GPUBuffer;
    /** Steps screened and steps that fell back to the full head, since the call began. */
    stats: GPUBuffer;
    screen: GPUBindGroup[];
    mark: GPUBindGroup;
    route: GPUBindGroup;
    refine: GPUBindGroup[];
    pick: GPUBindGroup;
  };
}

/** The 8-bit copy of the head that screens the greedy choice (see kernels/head_screen.ts). */
interface HeadScreen {
  buffers: GPUBuffer[];
  /** Per head chunk: the copy, the scales and bound factors, the params. */
  chunks: { q: GPUBuffer; sc: GPUBuffer; params: GPUBuffer }[];
  /** Params over the whole vocabulary (mark and pick). */
  all: GPUBuffer;
}

/**
 * Generation calls of at least this many steps build the screening copy of the head (one pass
 * over the head, 0.16-0.31 s for GPT-2 124M on llvmpipe, compiling included); later calls use it
 * whatever their length. Each screened step saves about 30 ms there, so much shorter calls would
 * not repay it.
 */
const SCREEN_MIN_STEPS = 32;

/**
 * A step falls back to the full head when a batch row has more than `vocab / SCREEN_FALLBACK`
 * candidates: each costs about 4.4 µs on llvmpipe (a strided pass over its weights), so about
 * vocab / 8 of them would cost what the full head saves.
 */
const SCREEN_FALLBACK = 16;

interface Statics {
  embed: GPUBuffer[];
  ln: GPUBuffer;
  lnLast: GPUBuffer;
  qkv: GPUBuffer;
  proj: GPUBuffer;
  fc: GPUBuffer;
  fc2: GPUBuffer;
  head: GPUBuffer[];
  argmax: GPUBuffer;
}

/** An indirect dispatch's sizes: three u32 at `offset` in `buffer`. */
type Indirect = [buffer: GPUBuffer, offset: number];

/** Where dispatches go: one compute pass, or one timed pass each. */
interface Recorder {
  dispatch(name: string, pipe: GPUComputePipeline, group: GPUBindGroup, x: number, y?: number, z?: number): void;
  dispatchIndirect(name: string, pipe: GPUComputePipeline, group: GPUBindGroup, at: Indirect): void;
}

class PassRecorder implements Recorder {
  #pass: GPUComputePassEncoder;
  #pipe?: GPUComputePipeline;
  constructor(pass: GPUComputePassEncoder) {
    this.#pass = pass;
  }
  #bind(pipe: GPUComputePipeline, group: GPUBindGroup): void {
    if (pipe !== this.#pipe) this.#pass.setPipeline(this.#pipe = pipe);
    this.#pass.setBindGroup(0, group);
  }
  dispatch(_name: string, pipe: GPUComputePipeline, group: GPUBindGroup, x: number, y = 1, z = 1): void {
    this.#bind(pipe, group);
    this.#pass.dispatchWorkgroups(x, y, z);
  }
  dispatchIndirect(_name: string, pipe: GPUComputePipeline, group: GPUBindGroup, at: Indirect): void {
    this.#bind(pipe, group);
    this.#pass.dispatchWorkgroupsIndirect(...at);
  }
}

interface Call {
  name: string;
  pipe: GPUComputePipeline;
  group: GPUBindGroup;
  x: number;
  y: number;
  z: number;
  indirect?: Indirect;
}

/** Sends a recorded call to another recorder. */
function replay(rec: Recorder, c: Call): void {
  if (c.indirect) rec.dispatchIndirect(c.name, c.pipe, c.group, c.indirect);
  else rec.dispatch(c.name, c.pipe, c.group, c.x, c.y, c.z);
}

class ListRecorder implements Recorder {
  calls: Call[] = [];
  dispatch(name: string, pipe: GPUComputePipeline, group: GPUBindGroup, x: number, y = 1, z = 1): void {
    this.calls.push({ name, pipe, group, x, y, z });
  }
  dispatchIndirect(name: string, pipe: GPUComputePipeline, group: GPUBindGroup, indirect: Indirect): void {
    this.calls.push({ name, pipe, group, x: 0, y: 0, z: 0, indirect });
  }
}

class TimedRecorder implements Recorder {
  names: string[] = [];
  #enc: GPUCommandEncoder;
  #qs: GPUQuerySet;
  #dev: GPUDevice;
  constructor(dev: GPUDevice, enc: GPUCommandEncoder, max: number) {
    this.#dev = dev;
    this.#enc = enc;
    this.#qs = dev.createQuerySet({ type: "timestamp", count: 2 * max });
  }
  dispatch(name: string, pipe: GPUComputePipeline, group: GPUBindGroup, x: number, y = 1, z = 1): void {
    this.#timed(name, pipe, group, (pass) => pass.dispatchWorkgroups(x, y, z));
  }
  dispatchIndirect(name: string, pipe: GPUComputePipeline, group: GPUBindGroup, at: Indirect): void {
    this.#timed(name, pipe, group, (pass) => pass.dispatchWorkgroupsIndirect(...at));
  }
  #timed(name: string, pipe: GPUComputePipeline, group: GPUBindGroup, go: (p: GPUComputePassEncoder) => void): void {
    const i = this.names.length;
    this.names.push(name);
    const pass = this.#enc.beginComputePass({
      timestampWrites: { querySet: this.#qs, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
    });
    pass.setPipeline(pipe);
    pass.setBindGroup(0, group);
    go(pass);
    pass.end();
  }
  async read(wait: (p: Promise<void>) => Promise<void>): Promise<number[]> {
    const n = this.names.length * 2;
    const res = this.#dev.createBuffer({ size: n * 8, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const out = this.#dev.createBuffer({ size: n * 8, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    try {
      this.#enc.resolveQuerySet(this.#qs, 0, n, res, 0);
      this.#enc.copyBufferToBuffer(res, 0, out, 0, n * 8);
      this.#dev.queue.submit([this.#enc.finish()]);
      await wait(out.mapAsync(GPUMapMode.READ));
      const t = new BigInt64Array(out.getMappedRange());
      return this.names.map((_, i) => Number(t[2 * i + 1] - t[2 * i]) / 1e6);
    } finally {
      res.destroy();
      out.destroy();
      this.#qs.destroy();
    }
  }
}

/**
 * Rows per workgroup for a matrix product over `M` rows: at most `maxRows` ({@linkcode MM_ROWS} for the GPU kernel,
 * {@linkcode MM_WIDE_ROWS} for the CPU one), in as few tiles as possible, wasting fewest rows.
 */
function tmFor(M: number, maxRows: number): number {
  return Math.ceil(M / Math.ceil(M / maxRows));
}

/** The kernels every model uses, for a device and weight type: embedding, LayerNorm, attention (with the cache store), argmax and one-row matrix product. */
function baseKernels(
  gpu: GpuContext,
  dtype: WeightDType,
  headDim: number,
  wide: boolean,
  attn = attentionKernel(gpu, headDim),
  argmax = argmaxKernels(gpu),
  xu = xUniformFor(gpu, wide),
): [string, KernelSpec, Record<string, number>][] {
  const kernels: [string, KernelSpec, Record<string, number>][] = [
    ["embed", dtype === "f16" ? EMBEDDING_F16 : EMBEDDING, {}],
    ["ln", serialFor(gpu, LAYER_NORM, LAYER_NORM_SERIAL), {}],
    attn,
    ...argmax,
    ["mm1", matmulSpec(dtype, wide), matmulConstants(gpu, 1, wide)],
  ];
  if (xu) kernels.push(["mm1u", matmulXuSpec(dtype), matmulConstants(gpu, 1, wide)]);
  return kernels;
}

/**
 * Whether the products on a CPU adapter whose rows of `x` fit one uniform binding of
 * {@linkcode MM_X_UNIFORM_VEC4S} vec4s (a decoding step at batch 1, short prompts) read `x` from a
 * uniform buffer ({@linkcode MATMUL_WIDE_XU}): llvmpipe loads a storage buffer lane by lane, with a
 * bounds check per word, and a uniform buffer with a branch-free gather. GPT_WEBGPU_X_UNIFORM=0
 * turns it off.
 */
function xUniformFor(gpu: GpuContext, wide: boolean): boolean {
  return wide && envFlag("GPT_WEBGPU_X_UNIFORM") !== false &&
    gpu.device.limits.maxUniformBufferBindingSize >= MM_X_UNIFORM_VEC4S * 16;
}

/**
 * The greedy-choice kernels: on a CPU adapter the barrier-free scan; on a GPU two passes, the best
 * of each of {@linkcode ARGMAX_PARTS} parts of the vocabulary and then the best of those (one
 * workgroup scanning the whole vocabulary waits on one load after another).
 * GPT_WEBGPU_ARGMAX=serial|single|split picks one on any adapter ("single": one workgroup).
 */
function argmaxKernels(gpu: GpuContext): [string, KernelSpec, Record<string, number>][] {
  const env = envValue("GPT_WEBGPU_ARGMAX");
  const kind = env === "serial" || env === "single" || env === "split" ? env : gpu.isCpu ? "serial" : "split";
  if (kind === "serial") return [["argmax", ARGMAX_SERIAL, {}]];
  if (kind === "single") return [["argmax", ARGMAX, {}]];
  return [["argmax", ARGMAX_PART, {}], ["argmax_final", ARGMAX_FINAL, {}]];
}

/**
 * The barrier-free variant of a kernel on a CPU adapter, where each workgroup barrier is a switch
 * between SIMD groups and makes llvmpipe compile the kernel several times slower; else the kernel.
 */
function serialFor(gpu: GpuContext, spec: KernelSpec, serial: KernelSpec): KernelSpec {
  return gpu.isCpu ? serial : spec;
}

/**
 * The attention kernel for an adapter: on a CPU adapter the barrier-free variant (each barrier is
 * costly in llvmpipe), on a GPU the key-block variant with 256 invocations per query and head
 * (both read vec4s, so the head size must be a multiple of 4), else the workgroup-wide one that
 * takes any head size. GPT_WEBGPU_ATTENTION=serial|block|parts picks one on any adapter (where the
 * head size allows).
 */
function attentionKernel(gpu: GpuContext, headDim: number): [string, KernelSpec, Record<string, number>] {
  const env = envValue("GPT_WEBGPU_ATTENTION");
  const kind = headDim % 4 !== 0
    ? "parts"
    : env === "serial" || env === "block" || env === "parts"
    ? env
    : gpu.isCpu
    ? "serial"
    : "block";
  if (kind === "serial") return ["attn", ATTENTION_SERIAL, {}];
  if (kind === "block") return ["attn", ATTENTION_BLOCK, { HD4: headDim / 4 }];
  return ["attn", ATTENTION, gpu.isCpu ? { AW: 64, PARTS: 1 } : { AW: 256, PARTS: 4 }];
}

/**
 * Invocations along the columns of a matrix workgroup (4 columns each): small tiles make more
 * workgroups, which a GPU with many cores needs for the one-row (decode) products; on a CPU
 * adapter 16 keeps each workgroup's loads contiguous. GPT_WEBGPU_MM_WG=1|2|4|8|16 sets it on a GPU.
 */
function mmWg(gpu: GpuContext): number {
  const env = envNumber("GPT_WEBGPU_MM_WG");
  if (!gpu.isCpu && env !== undefined && [1, 2, 4, 8, 16].includes(env)) return env;
  return gpu.isCpu ? 16 : 4;
}

/** Most token rows per workgroup of the general (GPU) matrix kernel. */
export const MM_ROWS = 4;

/**
 * Override constants of the matrix kernel for TM rows per workgroup: KS (k-slices) is 1 on a CPU
 * adapter; on a GPU as many as keep the partial sums of {@linkcode MM_ROWS} rows
 * (MM_ROWS * KS * WG vec4s) within the kernel's 1024-entry workgroup array and the invocation
 * limit, the same for every TM: each row's sums then run in the same order in a decoding step
 * (one row) as in a full pass (several), so `generate` keeps the ids of `generateTextSimple`.
 * U (UNROLL in the CPU kernel) from {@linkcode unrollFor}.
 *
 * @internal Exported for tests.
 */
export function matmulConstants(gpu: GpuContext, tm: number, wide: boolean): Record<string, number> {
  if (wide) return { TM: tm, WG: 16, UNROLL: unrollFor(gpu, tm, true) };
  const wg = mmWg(gpu);
  const byLimit = Math.floor(Math.min(mmThreads(gpu), gpu.device.limits.maxComputeInvocationsPerWorkgroup) / wg);
  const ks = gpu.isCpu ? 1 : Math.max(1, Math.min(byLimit, Math.floor(1024 / (MM_ROWS * wg))));
  return { TM: tm, KS: ks, WG: wg, U: unrollFor(gpu, tm) };
}

/**
 * Most invocations per matrix workgroup on a GPU (columns times k-slices): 256, or
 * GPT_WEBGPU_MM_THREADS=64|128|256|512|1024 (where the device allows). The workgroup array also
 * caps the k-slices at 1024 / (MM_ROWS * WG), so more than 256 only counts with
 * GPT_WEBGPU_MM_WG below 4.
 */
function mmThreads(gpu: GpuContext): number {
  const env = envNumber("GPT_WEBGPU_MM_THREADS");
  return !gpu.isCpu && env !== undefined && [64, 128, 256, 512, 1024].includes(env) ? env : 256;
}

/**
 * How far the matrix kernel's k loop is written out, 4 or 1, and 4 only for one-row products
 * (decoding). The GPU kernel keeps 4 k-quads of loads in flight per loop trip on a GPU, where a
 * step waits on the latency of each product's loads (on a CPU adapter the GPU kernel's unrolled
 * loop takes llvmpipe seconds to compile). The CPU kernel (`wide`) writes out the 4 weight rows
 * of a k-quad; with several rows it walks them in a loop instead, which llvmpipe compiles about
 * 3x faster and which runs faster there. GPT_WEBGPU_MM_UNROLL=1 or 4 decides.
 */
function unrollFor(gpu: GpuContext, tm: number, wide = false): number {
  const env = envNumber("GPT_WEBGPU_MM_UNROLL");
  if (env === 1 || env === 4) return env;
  return tm === 1 && (wide || !gpu.isCpu) ? 4 : 1;
}

/**
 * Whether the matrix products use the wide CPU kernel (CPU adapters, unless the LayerNorm is
 * fused into the products, which only the general kernel does).
 */
function wideMatmul(gpu: GpuContext): boolean {
  return gpu.isCpu && !fuseLnFor(gpu);
}

/** The CPU matrix kernel that reads `x` from a uniform buffer, for a weight type. */
function matmulXuSpec(dtype: WeightDType): KernelSpec {
  return dtype === "f16" ? MATMUL_WIDE_XU_F16 : MATMUL_WIDE_XU;
}

/** The matrix kernel for an adapter and weight type. */
function matmulSpec(dtype: WeightDType, wide: boolean): KernelSpec {
  if (wide) return dtype === "f16" ? MATMUL_WIDE_F16 : MATMUL_WIDE;
  return dtype === "f16" ? MATMUL_F16 : MATMUL;
}

/**
 * Whether the LayerNorms before the attention and the feed-forward run inside the following
 * matrix kernel: on GPUs (fewer dispatches), not on CPU adapters (there the per-element
 * normalisation in the inner loop costs more than the dispatch). GPT_WEBGPU_FUSE_LN=1 or 0 decides.
 */
function fuseLnFor(gpu: GpuContext): boolean {
  return envFlag("GPT_WEBGPU_FUSE_LN") ?? !gpu.isCpu;
}

/** Compiles the base kernels (cached per device). */
async function precompile(gpu: GpuContext, dtype: WeightDType, headDim: number): Promise<void> {
  for (const [, spec, c] of baseKernels(gpu, dtype, headDim, wideMatmul(gpu))) await pipelineOf(gpu.device, spec, c);
}

/** An environment variable, or undefined when unset or not permitted (no --allow-env: the defaults). */
function envValue(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** A number from an environment variable, or undefined when unset, not a number or not permitted. */
function envNumber(name: string): number | undefined {
  const v = envValue(name);
  return v === undefined || v.trim() === "" || !Number.isFinite(Number(v)) ? undefined : Number(v);
}

/** A boolean from an environment variable ("1" or "0"), or undefined when unset or not permitted. */
function envFlag(name: string): boolean | undefined {
  const v = envValue(name);
  return v === undefined ? undefined : v === "1";
}

/** Validates a batch of token rows and returns it as `[B, T]` plus a flat copy. */
export function checkBatch(
  idx: unknown,
  vocab: number,
  what: string,
): { B: number; T: number; flat: Uint32Array } {
  if (!Array.isArray(idx) || idx.length === 0) {
    throw new TypeError(
      `Cannot ${what}: idx must be a non-empty array of token rows, got ${JSON.stringify(idx)?.slice(0, 40)}`,
    );
  }
  const B = idx.length;
  const first = idx[0];
  if (!Array.isArray(first)) {
    throw new TypeError(`Cannot ${what}: idx[0] is not an array of token ids, pass a batch like [[15496, 11]]`);
  }
  const T = first.length;
  if (T === 0) throw new RangeError(`Cannot ${what}: prompt has 0 tokens`);
  const flat = new Uint32Array(B * T);
  for (let b = 0; b < B; b++) {
    const row = idx[b];
    if (!Array.isArray(row) || row.length !== T) {
      throw new TypeError(
        `Cannot ${what}: row ${b} has ${
          Array.isArray(row) ? row.length : "no"
        } tokens but row 0 has ${T}, pad or split the batch so every row has the same length`,
      );
    }
    for (let t = 0; t < T; t++) {
      const id = row[t];
      if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= vocab) {
        throw new RangeError(
          `Cannot ${what}: token id '${id}' at [${b}][${t}] is outside [0, ${vocab}), use ids from the model's tokenizer`,
        );
      }
      flat[b * T + t] = id;
    }
  }
  return { B, T, flat };
}

/**
 * The book's `GPTModel` on WebGPU: token and position embeddings, `n_layers` pre-LayerNorm
 * blocks of causal multi-head attention and a GELU feed-forward network, a final LayerNorm and
 * the output head. Weights are uploaded once; activations stay on the GPU.
 *
 * @example
 * ```ts ignore
 * import { GPT_CONFIG_124M, GPTModel } from "./mod.ts";
 * using model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123 });
 * const logits = await model.forward([[15496, 11, 314, 716]]); // [1, 4, 50257]
 * ```
 */
export class GPTModel {
  /** The configuration, with defaults filled in. */
  readonly config: Readonly<Required<GPTConfig>>;
  /** How the weight matrices are stored. */
  readonly dtype: WeightDType;
  #gpu: GpuContext;
  #weights: ModelWeights;
  #owned: GPUBuffer[];
  #statics!: Statics;
  #ws?: Workspace;
  #screen?: HeadScreen;
  /** Set when most steps of a screened call fell back to the full head: screening stops. */
  #screenOff = false;
  #destroyed = false;
  #queue: Promise<unknown> = Promise.resolve();
  #vp: number;
  #fused: boolean;
  /** The attention kernel and its constants, chosen once (see {@linkcode attentionKernel}). */
  #attn: [string, KernelSpec, Record<string, number>];
  /** The greedy-choice kernels, chosen once (see {@linkcode argmaxKernels}). */
  #argmax: [string, KernelSpec, Record<string, number>][];
  #wide: boolean;
  /** Products whose rows fit one uniform binding read `x` from it ({@linkcode xUniformFor}, chosen once). */
  #xu: boolean;
  /** Invocations along the columns of a general matrix workgroup ({@linkcode mmWg}, read once). */
  #wg: number;

  private constructor(
    cfg: Required<GPTConfig>,
    dtype: WeightDType,
    gpu: GpuContext,
    weights: ModelWeights,
    owned: GPUBuffer[],
  ) {
    this.config = Object.freeze({ ...cfg });
    this.dtype = dtype;
    this.#gpu = gpu;
    this.#weights = weights;
    this.#owned = owned;
    this.#vp = roundUp(cfg.vocab_size, 64);
    this.#fused = fuseLnFor(gpu);
    this.#wide = gpu.isCpu && !this.#fused;
    this.#xu = xUniformFor(gpu, this.#wide);
    this.#wg = mmWg(gpu);
    this.#attn = attentionKernel(gpu, cfg.emb_dim / cfg.n_heads);
    this.#argmax = argmaxKernels(gpu);
  }

  /**
   * Creates a model initialised exactly like `torch.manual_seed(seed); GPTModel(config)`.
   *
   * @param config The configuration (the book's keys).
   * @param options Seed (default 123) and weight storage type.
   * @returns The model, its weights on the GPU.
   * @throws {RangeError} On an invalid configuration.
   * @throws {WebGPUUnavailableError} When there is no WebGPU adapter.
   * @example
   * ```ts ignore
   * const model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123 });
   * ```
   */
  static async create(config: GPTConfig, options: CreateOptions = {}): Promise<GPTModel> {
    const cfg = validateConfig(config);
    const seed = options.seed ?? 123;
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(`Cannot create the model: seed '${seed}' is not a non-negative integer`);
    }
    return await GPTModel.fromTensors(cfg, seededParametersAsync(cfg, seed), options, false);
  }

  /**
   * Loads weights from a safetensors file or directory: the book's `state_dict` names (config from
   * `__metadata__.config`) or Hugging Face GPT-2 (`model.safetensors` + `config.json`; the head is
   * tied to `wte` unless `lm_head.weight` is present). F32, F16 and BF16 tensors are read one at a
   * time and uploaded as they are read.
   *
   * @param path A `.safetensors` file, or a directory with `model.safetensors`.
   * @param options Storage type, a configuration, and a progress callback.
   * @returns The model.
   * @throws {Deno.errors.NotFound} When the path does not exist.
   * @throws {SafetensorsError} When the file is not a valid safetensors file.
   * @throws {WeightsError} On a missing or misshapen tensor.
   * @example
   * ```ts ignore
   * using model = await GPTModel.load("./gpt2"); // Hugging Face's gpt2 directory
   * ```
   */
  static async load(path: string, options: LoadOptions = {}): Promise<GPTModel> {
    const src = await openWeights(path, options.config);
    try {
      return await GPTModel.fromTensors(src.config, src.tensors(options.onProgress), options, src.tiedHead);
    } finally {
      src.close();
    }
  }

  /**
   * Builds a model from named tensors (the book's `state_dict` names), uploading each as it
   * arrives. Frees everything on failure.
   *
   * @param config The configuration.
   * @param tensors The parameters, in any order.
   * @param options Storage options.
   * @param tiedHead Use the token embedding as the output head if `out_head.weight` is absent.
   * @returns The model.
   */
  static async fromTensors(
    config: GPTConfig,
    tensors: Iterable<InputTensor> | AsyncIterable<InputTensor>,
    options: Pick<CreateOptions, "dtype" | "maxBindingBytes"> = {},
    tiedHead = false,
  ): Promise<GPTModel> {
    const cfg = validateConfig(config);
    const dtype = options.dtype ?? "f32";
    if (dtype !== "f32" && dtype !== "f16") {
      throw new RangeError(`Cannot create the model: dtype '${dtype}' is not "f32" or "f16"`);
    }
    const hd = cfg.emb_dim / cfg.n_heads;
    if (hd > 256) {
      throw new RangeError(`Cannot create the model: head size ${hd} is over 256, use more heads`);
    }
    const gpu = await getGpu();
    const limits = gpu.device.limits;
    const maxBinding = Math.min(options.maxBindingBytes ?? Infinity, limits.maxStorageBufferBindingSize);
    const chunkRows = vocabChunkRows(cfg.emb_dim, dtype, maxBinding);
    const need = [
      ["feed-forward weight", cfg.emb_dim * 4 * cfg.emb_dim * (dtype === "f16" ? 2 : 4)],
      ["position embedding", cfg.context_length * cfg.emb_dim * 4],
    ] as const;
    for (const [what, bytes] of need) {
      if (bytes > maxBinding) {
        throw new RangeError(
          `Cannot create the model: its ${what} needs ${bytes} bytes in one binding, ${
            bytes - maxBinding
          } over the adapter's limit of ${maxBinding}`,
        );
      }
    }
    // compile the kernels while the weights upload (pipelines are cached per device)
    const compiling = precompile(gpu, dtype, hd).catch((e) => e as Error);
    const owned: GPUBuffer[] = [];
    const track = (b: GPUBuffer) => owned.push(b);
    gpu.device.pushErrorScope("out-of-memory");
    gpu.device.pushErrorScope("validation");
    let model: GPTModel;
    try {
      const builder = new WeightBuilder(gpu.device, cfg, dtype, chunkRows, track);
      for await (const t of tensors) {
        builder.add(t);
        await drainWrites(gpu.device);
      }
      await settleWrites(gpu.device);
      const weights = builder.finish(tiedHead);
      model = new GPTModel(cfg, dtype, gpu, weights, owned);
      model.#makeStatics(chunkRows);
    } catch (e) {
      await settleWrites(gpu.device).catch(() => {});
      await gpu.device.popErrorScope();
      await gpu.device.popErrorScope();
      for (const b of owned) b.destroy();
      await compiling;
      throw e;
    }
    const validation = await gpu.device.popErrorScope();
    const oom = await gpu.device.popErrorScope();
    if (validation || oom) {
      for (const b of owned) b.destroy();
      const total = owned.reduce((s, b) => s + b.size, 0);
      throw new RangeError(
        `Cannot create the model: the GPU refused its ${total} bytes of weights (${(oom ?? validation)!.message})`,
      );
    }
    const compiled = await compiling;
    if (compiled instanceof Error) {
      model.destroy();
      throw compiled;
    }
    await model.#compile();
    return model;
  }

  /** Bytes of GPU memory the weights take. */
  get weightBytes(): number {
    return this.#owned.reduce((s, b) => s + b.size, 0);
  }

  /** The adapter the model runs on. */
  get adapter(): string {
    return this.#gpu.description;
  }

  #check(what: string): void {
    if (this.#destroyed) {
      throw new Error(`Cannot ${what}: the model was destroyed, create a new one`);
    }
    if (this.#gpu.lost) {
      throw new DeviceLostError(`Cannot ${what}: the GPU device was lost (${this.#gpu.lost}), create a new model`);
    }
  }

  #uniform(label: string, words: number[]): GPUBuffer {
    const data = new Uint32Array(roundUp(Math.max(words.length, 4), 4));
    words.forEach((w, i) => data[i] = w);
    const b = this.#gpu.device.createBuffer({
      label,
      size: data.byteLength,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      mappedAtCreation: true,
    });
    new Uint32Array(b.getMappedRange()).set(data);
    b.unmap();
    this.#owned.push(b);
    return b;
  }

  #makeStatics(chunkRows: number): void {
    const { emb_dim: C, vocab_size: V, layer_norm_epsilon: eps } = this.config;
    const f = new Float32Array(1);
    const fbits = (x: number) => {
      f[0] = x;
      return new Uint32Array(f.buffer)[0];
    };
    // matmul params: M, K, N, -, ldy, y_off, m_mode, flags, x_row0, eps
    const mm = (label: string, K: number, N: number, flags: number, ldy = N, yOff = 0, mMode = 0) =>
      this.#uniform(label, [0, K, N, 0, ldy, yOff, mMode, flags, 0, fbits(eps)]);
    void chunkRows;
    this.#statics = {
      embed: this.#weights.tok.map((c) => this.#uniform("embed.params", [C, c.v0, c.N, 0])),
      ln: this.#uniform("ln.params", [C, 0, fbits(eps)]),
      lnLast: this.#uniform("ln_last.params", [C, 1, fbits(eps)]),
      qkv: mm("qkv.params", C, 3 * C, MM_BIAS | (this.#fuseLn ? MM_LN : 0)),
      proj: mm("proj.params", C, C, MM_BIAS | MM_ADD),
      fc: mm("fc.params", C, 4 * C, MM_BIAS | MM_GELU | (this.#fuseLn ? MM_LN : 0)),
      fc2: mm("fc2.params", 4 * C, C, MM_BIAS | MM_ADD),
      head: this.#weights.head.map((c) => mm("head.params", C, c.N, 0, this.#vp, c.v0, 1)),
      argmax: this.#uniform("argmax.params", [V, this.#vp, ARGMAX_PARTS, Math.ceil(V / ARGMAX_PARTS)]),
    };
  }

  get #mm(): KernelSpec {
    return matmulSpec(this.dtype, this.#wide);
  }

  /**
   * Whether the LayerNorms before the attention and the feed-forward run inside the following
   * matrix kernel (GPUs: fewer dispatches) or as their own dispatch (CPU adapters, where the
   * per-element normalisation in the inner loop costs more than the dispatch).
   */
  get #fuseLn(): boolean {
    return this.#fused;
  }

  /** The attention kernel (see {@linkcode attentionKernel}). */
  get #attention(): KernelSpec {
    return this.#attn[1];
  }

  /** Whether attention runs as the barrier-free kernel, one invocation per (query, head). */
  get #serialAttention(): boolean {
    return this.#attention === ATTENTION_SERIAL;
  }

  /** Rows per matrix workgroup for `M` rows (see {@linkcode tmFor}). */
  #tmFor(M: number): number {
    return tmFor(M, this.#wide ? MM_WIDE_ROWS : MM_ROWS);
  }

  /** Output columns per matmul workgroup. */
  get #cols(): number {
    return this.#wide ? 16 * MM_WIDE_COLS[this.dtype] : 4 * this.#wg;
  }

  #pipes = new Map<string, GPUComputePipeline>();

  async #compile(): Promise<void> {
    const d = this.#gpu.device;
    const hd = this.config.emb_dim / this.config.n_heads;
    // with the kernels chosen at construction, whatever the environment says now
    const kernels = baseKernels(this.#gpu, this.dtype, hd, this.#wide, this.#attn, this.#argmax, this.#xu);
    for (const [key, spec, c] of kernels) {
      this.#pipes.set(key, await pipelineOf(d, spec, c));
    }
  }

  /** Compiles the matrix kernels a set of row counts needs (once each). */
  async #compileRows(rowCounts: Iterable<number>): Promise<void> {
    const keys = new Map<string, [KernelSpec, number]>();
    for (const n of rowCounts) {
      const tm = this.#tmFor(n);
      keys.set(`mm${tm}`, [this.#mm, tm]);
      if (this.#xuRows(n, this.config.emb_dim)) keys.set(`mm${tm}u`, [matmulXuSpec(this.dtype), tm]);
    }
    await Promise.all([...keys].map(async ([key, [spec, tm]]) => {
      if (!this.#pipes.has(key)) {
        this.#pipes.set(key, await pipelineOf(this.#gpu.device, spec, matmulConstants(this.#gpu, tm, this.#wide)));
      }
    }));
  }

  /** Whether a product over `rows` rows of K inputs reads `x` from a uniform buffer (all its rows fit the binding). */
  #xuRows(rows: number, K: number): boolean {
    return this.#xu && rows * K <= 4 * MM_X_UNIFORM_VEC4S;
  }

  #pipe(key: string): GPUComputePipeline {
    const p = this.#pipes.get(key);
    if (!p) throw new Error(`Pipeline '${key}' was not compiled`);
    return p;
  }

  #workspace(B: number, rows: number, L: number, cap: number): Workspace {
    const old = this.#ws;
    if (old && old.B >= B && old.rows >= rows && old.L >= L && old.cap >= cap) return old;
    if (old) {
      B = Math.max(B, old.B);
      rows = Math.max(rows, old.rows);
      L = Math.max(L, old.L);
      cap = Math.max(cap, old.cap);
      for (const b of [...old.buffers, ...(old.screen?.buffers ?? [])]) b.destroy();
      this.#ws = undefined;
    }
    L = roundUp(L, 64);
    const d = this.#gpu.device;
    const { emb_dim: C, n_heads: H, n_layers } = this.config;
    const hd = C / H;
    const maxBinding = d.limits.maxStorageBufferBindingSize;
    const buffers: GPUBuffer[] = [];
    const storage = (label: string, bytes: number, extra = 0) => {
      if (bytes > maxBinding) {
        throw new RangeError(
          `Cannot run the model: its ${label} buffer needs ${bytes} bytes, ${
            bytes - maxBinding
          } over the adapter's binding limit of ${maxBinding}, use a smaller batch or context`,
        );
      }
      const b = d.createBuffer({
        label,
        size: roundUp(Math.max(bytes, 16), 16),
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC | extra,
      });
      buffers.push(b);
      return b;
    };
    const uni = (label: string, words: number[]) => {
      const b = d.createBuffer({ label, size: 32, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
      d.queue.writeBuffer(b, 0, new Uint32Array([...words, 0, 0, 0, 0, 0, 0, 0, 0].slice(0, 8)));
      buffers.push(b);
      return b;
    };
    const f = new Float32Array([1 / Math.sqrt(hd)]);
    const tokens = storage("tokens", B * L * 4);
    const step = d.createBuffer({
      label: "step",
      size: STEP_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    buffers.push(step);
    // the inputs of the matrix products, also bound as uniform buffers where their rows fit one binding
    const xuBytes = MM_X_UNIFORM_VEC4S * 16;
    const xin = (label: string, bytes: number) =>
      this.#xu ? storage(label, Math.max(bytes, xuBytes), GPUBufferUsage.UNIFORM) : storage(label, bytes);
    const x = storage("x", rows * C * 4);
    const h = xin("h", rows * C * 4);
    const qkv = storage("qkv", rows * 3 * C * 4);
    const ctx = xin("ctx", rows * C * 4);
    const ff = xin("ff", rows * 4 * C * 4);
    const last = xin("last", B * C * 4);
    const logits = storage("logits", B * this.#vp * 4);
    const split = this.#argmax.length > 1;
    const parts = split ? storage("argmax.parts", B * ARGMAX_PARTS * 8) : undefined;
    const sampleParams = uni("sample.params", []);
    const attnParams = uni("attn.params", [C, H, hd, cap, new Uint32Array(f.buffer)[0]]);
    const s = this.#statics;
    const w = this.#weights;
    const bg = (spec: KernelSpec, label: string, res: GPUBuffer[]) =>
      d.createBindGroup({
        label,
        layout: layoutOf(d, spec),
        entries: res.map((buffer, binding) => ({ binding, resource: { buffer } })),
      });
    const mm = this.#mm;
    const mmXu = matmulXuSpec(this.dtype);
    // bindings as bg's, with binding 2 (x) the first MM_X_UNIFORM_VEC4S vec4s of its buffer
    const bgXu = (label: string, res: GPUBuffer[]) =>
      d.createBindGroup({
        label,
        layout: layoutOf(d, mmXu),
        entries: res.map((buffer, binding) => ({
          binding,
          resource: { buffer, size: binding === 2 ? xuBytes : undefined },
        })),
      });
    const ln = serialFor(this.#gpu, LAYER_NORM, LAYER_NORM_SERIAL);
    const emb = this.dtype === "f16" ? EMBEDDING_F16 : EMBEDDING;
    const layers = w.layers.map((lw, l) => {
      const kc = storage(`k_cache${l}`, B * cap * C * 4);
      const vc = storage(`v_cache${l}`, B * cap * C * 4);
      return {
        ln1: bg(ln, `ln1.${l}`, [s.ln, step, x, lw.ln1, h]),
        qkv: bg(mm, `qkv.${l}`, [s.qkv, step, this.#fuseLn ? x : h, lw.qkv.buffer, lw.qkvB, qkv, lw.ln1]),
        attn: bg(this.#attention, `attn.${l}`, [
          attnParams,
          step,
          qkv,
          kc,
          vc,
          ctx,
        ]),
        proj: bg(mm, `proj.${l}`, [s.proj, step, ctx, lw.proj.buffer, lw.projB, x, lw.ln1]),
        ln2: bg(ln, `ln2.${l}`, [s.ln, step, x, lw.ln2, h]),
        fc: bg(mm, `fc.${l}`, [s.fc, step, this.#fuseLn ? x : h, lw.fc.buffer, lw.fcB, ff, lw.ln2]),
        fc2: bg(mm, `fc2.${l}`, [s.fc2, step, ff, lw.fc2.buffer, lw.fc2B, x, lw.ln2]),
        xu: this.#xu
          ? {
            qkv: bgXu(`qkv.xu.${l}`, [s.qkv, step, h, lw.qkv.buffer, lw.qkvB, qkv, lw.ln1]),
            proj: bgXu(`proj.xu.${l}`, [s.proj, step, ctx, lw.proj.buffer, lw.projB, x, lw.ln1]),
            fc: bgXu(`fc.xu.${l}`, [s.fc, step, h, lw.fc.buffer, lw.fcB, ff, lw.ln2]),
            fc2: bgXu(`fc2.xu.${l}`, [s.fc2, step, ff, lw.fc2.buffer, lw.fc2B, x, lw.ln2]),
          }
          : undefined,
      };
    });
    void n_layers;
    const ws: Workspace = {
      B,
      rows,
      L,
      cap,
      buffers,
      tokens,
      step,
      logits,
      sampleParams,
      groups: {
        embed: w.tok.map((c, i) => bg(emb, "embed", [s.embed[i], step, tokens, c.buffer, w.pos, x])),
        layers,
        lnfLast: bg(ln, "lnf_last", [s.lnLast, step, x, w.lnf, last]),
        lnfAll: bg(ln, "lnf_all", [s.ln, step, x, w.lnf, h]),
        head: w.head.map((c, i) => bg(mm, "head", [s.head[i], step, last, c.buffer, w.lnf, logits, w.lnf])),
        headXu: this.#xu
          ? w.head.map((c, i) => bgXu("head.xu", [s.head[i], step, last, c.buffer, w.lnf, logits, w.lnf]))
          : undefined,
        argmax: bg(this.#argmax[0][1], "argmax", [s.argmax, step, logits, parts ?? tokens]),
        argmaxFinal: parts && bg(ARGMAX_FINAL, "argmax_final", [s.argmax, step, parts, tokens]),
        sample: bg(SAMPLE, "sample", [sampleParams, step, logits, tokens]),
      },
    };
    this.#ws = ws;
    return ws;
  }

  /**
   * Whether a greedy generation call of `steps` steps screens the head: on CPU adapters (where
   * the full head is a quarter of a decoding step), once the copy exists or for calls long enough
   * to repay it ({@linkcode SCREEN_MIN_STEPS}). `GPT_WEBGPU_HEAD_SCREEN=0` turns it off, `=1` on
   * for every greedy call. GPUs keep the full head: their matrix kernel adds in another order.
   */
  #screenFor(steps: number, sampling: boolean): boolean {
    // the fallback dispatches one argmax workgroup per row: the split argmax does not fit it
    if (sampling || !this.#wide || this.#argmax.length > 1) return false;
    const env = envValue("GPT_WEBGPU_HEAD_SCREEN");
    if (env === "0") return false;
    if (env === "1") return true;
    return !this.#screenOff && (this.#screen !== undefined || steps >= SCREEN_MIN_STEPS);
  }

  /** Compiles the screening kernels and makes the 8-bit copy of the head (once). */
  async #buildScreen(): Promise<void> {
    if (this.#screen) return;
    const d = this.#gpu.device;
    const f16 = this.dtype === "f16";
    const kernels: [string, KernelSpec][] = [
      ["hquant", f16 ? HEAD_QUANT_F16 : HEAD_QUANT],
      ["hscreen", HEAD_SCREEN],
      ["hmark", HEAD_MARK],
      ["hrefine", f16 ? HEAD_REFINE_F16 : HEAD_REFINE],
      ["hpick", HEAD_PICK],
      ["hroute", HEAD_ROUTE],
    ];
    await Promise.all(kernels.map(async ([key, spec]) => this.#pipes.set(key, await pipelineOf(d, spec, {}))));
    const { emb_dim: C, vocab_size: V } = this.config;
    const G = Math.ceil(V / SCREEN_GROUP);
    const buffers: GPUBuffer[] = [];
    const uniform = (words: number[]) => {
      const b = d.createBuffer({
        label: "head_screen.params",
        size: 32,
        usage: GPUBufferUsage.UNIFORM,
        mappedAtCreation: true,
      });
      new Uint32Array(b.getMappedRange()).set(words);
      b.unmap();
      buffers.push(b);
      return b;
    };
    const storage = (label: string, size: number) => {
      const b = d.createBuffer({ label, size: roundUp(size, 16), usage: GPUBufferUsage.STORAGE });
      buffers.push(b);
      return b;
    };
    const enc = d.createCommandEncoder({ label: "head_screen.quantize" });
    const pass = enc.beginComputePass();
    pass.setPipeline(this.#pipe("hquant"));
    const chunks = this.#weights.head.map((c) => {
      const q = storage(`head_screen.q[${c.v0}]`, C * c.ldw);
      const sc = storage(`head_screen.sc[${c.v0}]`, c.ldw * 8);
      const params = uniform([C, c.N, c.v0, G, this.#vp, 0, 0, 0]);
      pass.setBindGroup(
        0,
        d.createBindGroup({
          layout: layoutOf(d, f16 ? HEAD_QUANT_F16 : HEAD_QUANT),
          entries: [params, c.buffer, q, sc].map((buffer, binding) => ({ binding, resource: { buffer } })),
        }),
      );
      pass.dispatchWorkgroups(Math.ceil(c.ldw / 4 / 64));
      return { q, sc, params };
    });
    pass.end();
    d.queue.submit([enc.finish()]);
    try {
      await this.#await(d.queue.onSubmittedWorkDone());
    } catch (e) {
      for (const b of buffers) b.destroy();
      throw e;
    }
    const limit = Math.ceil(V / SCREEN_FALLBACK);
    this.#screen = { buffers, chunks, all: uniform([C, V, 0, G, this.#vp, limit, chunks.length + 1, 0]) };
  }

  /** Encodes a copy of the screen's step counts into a mappable buffer. */
  #copyStats(ws: Workspace, enc: GPUCommandEncoder): GPUBuffer {
    const out = this.#gpu.device.createBuffer({
      label: "head_screen.stats.read",
      size: 16,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    enc.copyBufferToBuffer(ws.screen!.stats, 0, out, 0, 16);
    return out;
  }

  /**
   * Stops screening for this model when more than half of a call's screened steps (at least
   * {@linkcode SCREEN_MIN_STEPS}) fell back to the full head: then the screen only adds its cost.
   */
  async #checkStats(out: GPUBuffer): Promise<void> {
    try {
      await this.#await(out.mapAsync(GPUMapMode.READ));
      const [steps, fallbacks] = new Uint32Array(out.getMappedRange());
      if (steps >= SCREEN_MIN_STEPS && 2 * fallbacks > steps) this.#screenOff = true;
    } finally {
      out.destroy();
    }
  }

  /** Resets the screen's counters and writes the full head's dispatch sizes for `B` rows. */
  #startScreen(ws: Workspace, B: number): void {
    const s = this.#screenGroups(ws);
    const d = this.#gpu.device;
    d.queue.writeBuffer(s.lo, 0, new Uint32Array(ws.B));
    d.queue.writeBuffer(s.count, 0, new Uint32Array(ws.B));
    d.queue.writeBuffer(s.stats, 0, new Uint32Array(4));
    const tm = this.#tmFor(B);
    const sizes = this.#weights.head.map((c) => [Math.ceil(c.N / this.#cols), Math.ceil(B / tm), 1, 0]);
    d.queue.writeBuffer(s.table, 0, new Uint32Array([...sizes.flat(), B, 1, 1, 0]));
  }

  /** The workspace's screening buffers and bind groups (made on first use). */
  #screenGroups(ws: Workspace): NonNullable<Workspace["screen"]> {
    if (ws.screen) return ws.screen;
    const d = this.#gpu.device;
    const hs = this.#screen!;
    const B = ws.B;
    const G = Math.ceil(this.config.vocab_size / SCREEN_GROUP);
    const buffers: GPUBuffer[] = [];
    const storage = (label: string, bytes: number) => {
      const b = d.createBuffer({
        label,
        size: roundUp(Math.max(bytes, 16), 16),
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
      });
      buffers.push(b);
      return b;
    };
    const hi = storage("head_screen.hi", B * this.#vp * 4);
    const ghi = storage("head_screen.ghi", B * G * 4);
    const lo = storage("head_screen.lo", B * 4);
    const count = storage("head_screen.count", B * 4);
    const list = storage("head_screen.list", B * this.#vp * 4);
    const vals = storage("head_screen.vals", B * this.#vp * 4);
    const nargs = this.#weights.head.length + 1;
    const table = storage("head_screen.table", nargs * 16);
    const stats = d.createBuffer({
      label: "head_screen.stats",
      size: 16,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
    });
    buffers.push(stats);
    const args = d.createBuffer({
      label: "head_screen.args",
      size: nargs * 12,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.INDIRECT,
    });
    buffers.push(args);
    const last = ws.buffers.find((b) => b.label === "last")!;
    const bg = (spec: KernelSpec, res: GPUBuffer[]) =>
      d.createBindGroup({
        label: spec.name,
        layout: layoutOf(d, spec),
        entries: res.map((buffer, binding) => ({ binding, resource: { buffer } })),
      });
    const f16 = this.dtype === "f16";
    const head = this.#weights.head;
    ws.screen = {
      buffers,
      lo,
      count,
      table,
      args,
      stats,
      route: bg(HEAD_ROUTE, [hs.all, ws.step, table, args, count, stats]),
      screen: hs.chunks.map((c) => bg(HEAD_SCREEN, [c.params, ws.step, last, c.q, c.sc, hi, ghi, lo])),
      mark: bg(HEAD_MARK, [hs.all, ws.step, hi, ghi, lo, count, list]),
      refine: hs.chunks.map((c, i) =>
        bg(f16 ? HEAD_REFINE_F16 : HEAD_REFINE, [c.params, ws.step, last, head[i].buffer, count, list, vals])
      ),
      pick: bg(HEAD_PICK, [hs.all, ws.step, list, vals, ws.tokens, count, lo]),
    };
    return ws.screen;
  }

  /** Encodes the transformer blocks for one step (embedding through the last block). */
  #encodeBody(rec: Recorder, ws: Workspace, B: number, T: number): void {
    const { emb_dim: C, n_heads: H } = this.config;
    const rows = B * T;
    const g = ws.groups;
    const wx = (n: number) => Math.ceil(n / 64);
    const tm = this.#tmFor(rows);
    const my = Math.ceil(rows / tm);
    // the product's pipeline and bind group: x from a uniform buffer where the step's rows fit one binding
    const mm = (K: number, group: GPUBindGroup, xu?: GPUBindGroup): [GPUComputePipeline, GPUBindGroup] =>
      this.#xuRows(rows, K) ? [this.#pipe(`mm${tm}u`), xu!] : [this.#pipe(`mm${tm}`), group];
    const embed = this.#pipe("embed");
    const ln = this.#pipe("ln");
    const attn = this.#pipe("attn");
    for (const e of g.embed) rec.dispatch("embedding", embed, e, wx(C), rows);
    for (const lg of g.layers) {
      if (!this.#fuseLn) rec.dispatch("layer_norm", ln, lg.ln1, rows);
      rec.dispatch(
        this.#fuseLn ? "matmul norm1+qkv" : "matmul qkv",
        ...mm(C, lg.qkv, lg.xu?.qkv),
        Math.ceil(3 * C / this.#cols),
        my,
      );
      if (this.#serialAttention) rec.dispatch("attention", attn, lg.attn, Math.ceil(T * H / 64), B);
      else rec.dispatch("attention", attn, lg.attn, T, H, B);
      rec.dispatch("matmul out_proj+residual", ...mm(C, lg.proj, lg.xu?.proj), Math.ceil(C / this.#cols), my);
      if (!this.#fuseLn) rec.dispatch("layer_norm", ln, lg.ln2, rows);
      rec.dispatch(
        this.#fuseLn ? "matmul norm2+fc+gelu" : "matmul fc+gelu",
        ...mm(C, lg.fc, lg.xu?.fc),
        Math.ceil(4 * C / this.#cols),
        my,
      );
      rec.dispatch("matmul fc2+residual", ...mm(4 * C, lg.fc2, lg.xu?.fc2), Math.ceil(C / this.#cols), my);
    }
  }

  /**
   * Encodes the final norm of each row's last token, the head and the argmax (or the sampler), or
   * with `screen` the screened greedy choice (the same ids).
   */
  #encodeNext(rec: Recorder, ws: Workspace, B: number, sample = false, screen = false): void {
    const g = ws.groups;
    rec.dispatch("layer_norm", this.#pipe("ln"), g.lnfLast, B);
    if (screen && !sample) {
      const s = this.#screenGroups(ws);
      const head = this.#weights.head;
      const groups = Math.ceil(this.config.vocab_size / SCREEN_GROUP);
      head.forEach((c, i) => {
        rec.dispatch("head screen", this.#pipe("hscreen"), s.screen[i], Math.ceil(c.N / SCREEN_GROUP / 16), B);
      });
      rec.dispatch("head mark", this.#pipe("hmark"), s.mark, Math.ceil(groups / 16), B);
      rec.dispatch("head route", this.#pipe("hroute"), s.route, 1);
      head.forEach((_, i) => {
        rec.dispatch("head refine", this.#pipe("hrefine"), s.refine[i], REFINE_INVOCATIONS / 16, B);
      });
      rec.dispatch("head pick", this.#pipe("hpick"), s.pick, B);
      // the full head and argmax, with zero workgroups unless the route fell back to them
      const xu = this.#xuRows(B, this.config.emb_dim);
      const mm = this.#pipe(`mm${this.#tmFor(B)}${xu ? "u" : ""}`);
      const full = xu ? g.headXu! : g.head;
      head.forEach((_, i) => rec.dispatchIndirect("matmul head (fallback)", mm, full[i], [s.args, 12 * i]));
      rec.dispatchIndirect("argmax (fallback)", this.#pipe("argmax"), g.argmax, [s.args, 12 * head.length]);
      return;
    }
    const tm = this.#tmFor(B);
    const xu = this.#xuRows(B, this.config.emb_dim);
    const mm = this.#pipe(`mm${tm}${xu ? "u" : ""}`);
    const groups = xu ? g.headXu! : g.head;
    this.#weights.head.forEach((c, i) => {
      rec.dispatch("matmul head", mm, groups[i], Math.ceil(c.N / this.#cols), Math.ceil(B / tm));
    });
    if (sample) rec.dispatch("sample", this.#pipe("sample"), g.sample, B);
    else if (g.argmaxFinal) {
      rec.dispatch("argmax", this.#pipe("argmax"), g.argmax, ARGMAX_PARTS, B);
      rec.dispatch("argmax", this.#pipe("argmax_final"), g.argmaxFinal, B);
    } else rec.dispatch("argmax", this.#pipe("argmax"), g.argmax, B);
  }

  /**
   * Times each kernel of one step with `timestamp-query`, on a prompt of `T` tokens per row.
   *
   * @param B Batch rows.
   * @param T Tokens per row in the step.
   * @param pos0 Cache position of the first token (0: a full pass; T = 1 and pos0 > 0: a decode step).
   * @returns Milliseconds per kernel name, summed over the step, and the weight bytes the step reads.
   */
  profileStep(
    B: number,
    T: number,
    pos0 = 0,
  ): Promise<{ method: string; kernels: Record<string, number>; count: Record<string, number> }> {
    this.#check("profile");
    return this.#serial(async () => {
      const d = this.#gpu.device;
      await this.#compileRows([B, B * T]);
      const screen = this.#screenFor(Infinity, false);
      if (screen) await this.#buildScreen();
      const ws = this.#workspace(B, B * T, pos0 + T + 1, pos0 + T);
      if (screen) this.#startScreen(ws, B);
      d.queue.writeBuffer(ws.step, 0, new Uint32Array([B, T, B * T, 0, pos0, ws.L, 0, 0]));
      const list = new ListRecorder();
      this.#encodeBody(list, ws, B, T);
      this.#encodeNext(list, ws, B, false, screen);
      const kernels: Record<string, number> = {};
      const count: Record<string, number> = {};
      for (const c of list.calls) count[c.name] = (count[c.name] ?? 0) + 1;
      if (this.#gpu.timestamps) {
        const enc = d.createCommandEncoder({ label: "profile" });
        const rec = new TimedRecorder(d, enc, list.calls.length);
        for (const c of list.calls) replay(rec, c);
        const times = await rec.read((p) => this.#await(p));
        list.calls.forEach((c, i) => kernels[c.name] = (kernels[c.name] ?? 0) + times[i]);
        if (times.some((t) => t > 0)) return { method: "timestamp-query", kernels, count };
      }
      // No usable timestamps: replay each kernel's dispatches of the step R times in one pass and
      // time the submission, less the time of an empty one.
      const wall = async (enc: GPUCommandEncoder) => {
        const t = performance.now();
        d.queue.submit([enc.finish()]);
        await this.#await(d.queue.onSubmittedWorkDone());
        return performance.now() - t;
      };
      const empty: number[] = [];
      for (let i = 0; i < 3; i++) empty.push(await wall(d.createCommandEncoder()));
      const base = empty.sort((a, b) => a - b)[1];
      const R = 8;
      for (const name of Object.keys(count)) {
        const enc = d.createCommandEncoder();
        const pass = enc.beginComputePass();
        const rec = new PassRecorder(pass);
        for (let r = 0; r < R; r++) {
          for (const c of list.calls) if (c.name === name) replay(rec, c);
        }
        pass.end();
        kernels[name] = Math.max(0, (await wall(enc)) - base) / R;
      }
      return { method: "replay", kernels, count };
    });
  }

  /** Runs `fn` after every earlier call on this model has finished (calls are queued). */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  async #readback(src: GPUBuffer, bytes: number, enc: GPUCommandEncoder): Promise<ArrayBuffer> {
    const d = this.#gpu.device;
    const staging = d.createBuffer({
      label: "readback",
      size: roundUp(bytes, 4),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    try {
      enc.copyBufferToBuffer(src, 0, staging, 0, roundUp(bytes, 4));
      d.queue.submit([enc.finish()]);
      await this.#await(staging.mapAsync(GPUMapMode.READ));
      return staging.getMappedRange().slice(0, bytes);
    } finally {
      staging.destroy();
    }
  }

  /** Waits for a GPU promise, or rejects when the device is lost first. */
  async #await<T>(p: Promise<T>): Promise<T> {
    const lost = this.#gpu.device.lost.then((info) => {
      throw new DeviceLostError(
        `The GPU device was lost while the model ran (${info.reason ?? "unknown"}: ${
          info.message || "no message"
        }), create a new model`,
      );
    });
    return await Promise.race([p, lost]);
  }

  /**
   * Runs a plan of steps on token rows and returns the rows with each step's greedy choice
   * written after its window. All steps go to the GPU in submissions of up to `chunk` steps,
   * with one readback at the end.
   *
   * @param flat The prompt rows, `[B, T0]`.
   * @param B Batch rows.
   * @param L Final row length (prompt plus one token per step).
   * @param plan The steps.
   * @returns The token rows, `[B, L]`.
   */
  async runPlan(
    flat: Uint32Array,
    B: number,
    L: number,
    plan: StepPlan[],
    options: RunOptions = {},
  ): Promise<Uint32Array> {
    this.#check("generate");
    return await this.#serial(async () => {
      this.#check("generate");
      const T0 = flat.length / B;
      const maxT = Math.max(1, ...plan.map((p) => p.T));
      const cap = Math.max(1, ...plan.map((p) => p.pos0 + p.T));
      if (B * maxT > 65535) {
        throw new RangeError(
          `Cannot generate: ${B} rows x ${maxT} tokens is over 65535 rows per step, use a smaller batch`,
        );
      }
      await this.#compileRows([B, ...plan.map((p) => B * p.T)]);
      if (options.sampling && !this.#pipes.has("sample")) {
        this.#pipes.set("sample", await pipelineOf(this.#gpu.device, SAMPLE, {}));
      }
      const screen = this.#screenFor(plan.length, Boolean(options.sampling));
      if (screen) await this.#buildScreen();
      const ws = this.#workspace(B, B * maxT, L, cap);
      const d = this.#gpu.device;
      if (screen) this.#startScreen(ws, B);
      const init = new Uint32Array(B * ws.L);
      for (let b = 0; b < B; b++) init.set(flat.subarray(b * T0, (b + 1) * T0), b * ws.L);
      d.queue.writeBuffer(ws.tokens, 0, init);
      const table = d.createBuffer({
        label: "step_table",
        size: Math.max(1, plan.length) * STEP_BYTES,
        usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      try {
        const steps = new Uint32Array(Math.max(1, plan.length) * 8);
        plan.forEach((p, i) => steps.set([B, p.T, B * p.T, p.start, p.pos0, ws.L, i, 0], i * 8));
        d.queue.writeBuffer(table, 0, steps);
        const sm = options.sampling;
        if (sm) {
          const w = new Uint32Array(8);
          const f = new Float32Array(w.buffer);
          w.set([this.config.vocab_size, this.#vp, sm.topK, sm.seed >>> 0]);
          f[4] = sm.temperature;
          f[5] = sm.topP;
          d.queue.writeBuffer(ws.sampleParams, 0, w);
        }
        const SUBMIT = 32; // steps per submission
        const res = new Uint32Array(B * L);
        const copyOut = (out: Uint32Array) => {
          for (let b = 0; b < B; b++) res.set(out.subarray(b * ws.L, b * ws.L + L), b * L);
        };
        let enc = d.createCommandEncoder({ label: "generate" });
        for (let i = 0; i < plan.length; i++) {
          enc.copyBufferToBuffer(table, i * STEP_BYTES, ws.step, 0, STEP_BYTES);
          const pass = enc.beginComputePass({ label: `step ${i}` });
          const rec = new PassRecorder(pass);
          this.#encodeBody(rec, ws, B, plan[i].T);
          this.#encodeNext(rec, ws, B, Boolean(sm), screen);
          pass.end();
          const last = i + 1 === plan.length;
          if (!last && options.readAfter?.(i + 1)) {
            copyOut(new Uint32Array(await this.#readback(ws.tokens, B * ws.L * 4, enc)));
            enc = d.createCommandEncoder({ label: "generate" });
            this.#check("generate");
            if (options.onChunk && !(await options.onChunk(res, i + 1))) return res;
          } else if (!last && (i + 1) % SUBMIT === 0) {
            d.queue.submit([enc.finish()]);
            enc = d.createCommandEncoder({ label: "generate" });
          }
        }
        // the step counts can only turn screening off for a call of SCREEN_MIN_STEPS or more
        const stats = screen && plan.length >= SCREEN_MIN_STEPS ? this.#copyStats(ws, enc) : undefined;
        copyOut(new Uint32Array(await this.#readback(ws.tokens, B * ws.L * 4, enc)));
        if (stats) await this.#checkStats(stats);
        if (options.onChunk) await options.onChunk(res, plan.length);
        return res;
      } finally {
        table.destroy();
      }
    });
  }

  /**
   * Runs the model on a batch of token rows, like `model(idx)` in the book.
   *
   * @param idx Token ids, `[batch, tokens]`, all rows the same length, at most `context_length` tokens.
   * @returns The logits, `[batch, tokens, vocab_size]`, row-major.
   * @throws {TypeError} On a ragged or malformed batch.
   * @throws {RangeError} On an id outside the vocabulary or more tokens than the context.
   * @example
   * ```ts ignore
   * const logits = await model.forward([[15496, 11, 314, 716]]);
   * ```
   */
  async forward(idx: number[][]): Promise<Float32Array> {
    this.#check("run the model");
    const { B, T, flat } = checkBatch(idx, this.config.vocab_size, "run the model");
    if (T > this.config.context_length) {
      throw new RangeError(
        `Cannot run the model: ${T} tokens exceed the context length ${this.config.context_length}, crop the input`,
      );
    }
    return await this.#serial(async () => {
      this.#check("run the model");
      const d = this.#gpu.device;
      const V = this.config.vocab_size;
      const C = this.config.emb_dim;
      const rows = B * T;
      const groupRowsEst = Math.max(
        1,
        Math.min(rows, Math.floor(d.limits.maxStorageBufferBindingSize / (this.#vp * 4))),
      );
      await this.#compileRows([rows, groupRowsEst, rows % groupRowsEst || groupRowsEst]);
      const ws = this.#workspace(B, rows, T, T);
      const init = new Uint32Array(B * ws.L);
      for (let b = 0; b < B; b++) init.set(flat.subarray(b * T, (b + 1) * T), b * ws.L);
      d.queue.writeBuffer(ws.tokens, 0, init);
      d.queue.writeBuffer(ws.step, 0, new Uint32Array([B, T, rows, 0, 0, ws.L, 0, 0]));
      // logits for every row: [rows, vp], bound in groups of rows that fit one binding
      const vp = this.#vp;
      const maxBinding = d.limits.maxStorageBufferBindingSize;
      const groupRows = Math.max(1, Math.min(rows, Math.floor(maxBinding / (vp * 4))));
      const temp: GPUBuffer[] = [];
      try {
        const logits = d.createBuffer({
          label: "forward.logits",
          size: rows * vp * 4,
          usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
        });
        temp.push(logits);
        const enc = d.createCommandEncoder({ label: "forward" });
        const pass = enc.beginComputePass({ label: "forward" });
        this.#encodeBody(new PassRecorder(pass), ws, B, T);
        pass.setPipeline(this.#pipe("ln"));
        pass.setBindGroup(0, ws.groups.lnfAll);
        pass.dispatchWorkgroups(rows);
        for (let r0 = 0; r0 < rows; r0 += groupRows) {
          const n = Math.min(groupRows, rows - r0);
          const tm = this.#tmFor(n);
          pass.setPipeline(this.#pipe(`mm${tm}`));
          for (const c of this.#weights.head) {
            const params = d.createBuffer({
              label: "head.params",
              size: 48,
              usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
            });
            temp.push(params);
            d.queue.writeBuffer(params, 0, new Uint32Array([n, C, c.N, 0, vp, c.v0, 2, 0, r0, 0, 0, 0]));
            const group = d.createBindGroup({
              layout: layoutOf(d, this.#mm),
              entries: [
                { binding: 0, resource: { buffer: params } },
                { binding: 1, resource: { buffer: ws.step } },
                { binding: 2, resource: { buffer: ws.buffers.find((b) => b.label === "h")! } },
                { binding: 3, resource: { buffer: c.buffer } },
                { binding: 4, resource: { buffer: this.#weights.lnf } },
                { binding: 5, resource: { buffer: logits, offset: r0 * vp * 4, size: n * vp * 4 } },
                { binding: 6, resource: { buffer: this.#weights.lnf } },
              ],
            });
            pass.setBindGroup(0, group);
            pass.dispatchWorkgroups(Math.ceil(c.N / this.#cols), Math.ceil(n / tm));
          }
        }
        pass.end();
        const raw = new Float32Array(await this.#readback(logits, rows * vp * 4, enc));
        const out = new Float32Array(rows * V);
        for (let r = 0; r < rows; r++) out.set(raw.subarray(r * vp, r * vp + V), r * V);
        return out;
      } finally {
        for (const b of temp) b.destroy();
      }
    });
  }

  /** Frees every GPU buffer of the model. Later calls throw. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const b of this.#owned) b.destroy();
    for (const b of this.#screen?.buffers ?? []) b.destroy();
    this.#screen = undefined;
    if (this.#ws) { for (const b of [...this.#ws.buffers, ...(this.#ws.screen?.buffers ?? [])]) b.destroy(); }
    this.#ws = undefined;
    this.#owned = [];
  }

  /** Same as {@linkcode GPTModel.destroy}, for `using`. */
  [Symbol.dispose](): void {
    this.destroy();
  }
}
