/**
 * The backend profile: which kernel each op of the forward pass uses on an adapter, and the sizes
 * those kernels run with. It is a function of the adapter's capabilities and the model's shape,
 * chosen once when a model is made; nothing here reads the environment. Tests and benchmarks pass
 * {@linkcode BackendOptions} to try another choice on the same adapter.
 *
 * The choices, and the measurements behind them (details in `docs/KERNELS.md`):
 * - CPU adapters (llvmpipe/lavapipe, SwiftShader, WARP) run barrier-free kernels: on llvmpipe each
 *   workgroup barrier is a switch between SIMD groups and makes a kernel compile several times slower.
 *   Their products use the wide kernel (16 columns x up to 11 rows an invocation) with the LayerNorm as
 *   its own dispatch, read `x` from a uniform buffer where a product's rows fit one binding (llvmpipe
 *   loads a storage buffer lane by lane with a bounds check per word), and screen the greedy head with
 *   an 8-bit copy of it.
 * - GPUs run the k-split kernel (k-slices meeting in workgroup memory, the LayerNorm computed in its
 *   prologue: fewer dispatches), key-block attention and the greedy choice in 64 parts and a final pass
 *   (one workgroup scanning the vocabulary was slower on an H100 and an H200).
 *
 * @module
 */

import type { GpuContext } from "../gpu/device.ts";
import type { WeightDType } from "../gpu/weights.ts";
import { checkOptions } from "./_options.ts";
import { MM_X_UNIFORM_VEC4S } from "../../kernels/mod.ts";

/** The matrix kernel families: `"wide"` for CPU adapters, `"ksplit"` for GPUs. */
export type MatmulFamily = "wide" | "ksplit";
/** The attention kernels: `"serial"` (CPU adapters), `"block"` (GPUs), `"parts"` (any head size). */
export type AttentionKind = "serial" | "block" | "parts";
/** The greedy-choice kernels: `"serial"` (one invocation per row, CPU adapters) or `"split"` (GPUs). */
export type ArgmaxKind = "serial" | "split";
/** When the greedy head is screened by its 8-bit copy: `"auto"`, `"always"` or `"never"`. */
export type HeadScreenMode = "auto" | "always" | "never";

/** Every adapter-dependent choice a model makes: one kernel per op, and the sizes they run with. */
export interface BackendProfile {
  /** The kind of adapter the choices were made for. */
  readonly adapter: "cpu" | "gpu";
  /**
   * The matrix kernel family. `"wide"`: 16 columns and up to 11 rows per invocation, no barriers,
   * LayerNorm as its own dispatch. `"ksplit"`: 4 columns an invocation, k-slices that meet in
   * workgroup memory, the LayerNorm before attention and feed-forward inside the product.
   */
  readonly matmul: MatmulFamily;
  /** Whether the LayerNorms before the attention and the feed-forward run inside the next product. */
  readonly fuseLayerNorm: boolean;
  /** The attention kernel (each also stores the step's keys and values in the cache). */
  readonly attention: AttentionKind;
  /** The greedy-choice kernel. */
  readonly argmax: ArgmaxKind;
  /** Whether products whose rows fit one uniform binding read `x` from it (`"wide"` only). */
  readonly xUniform: boolean;
  /**
   * Whether greedy calls screen the head with an 8-bit copy and compute exact logits only for the
   * candidates (`"wide"` with the serial argmax, f32 or f16 weights). `"auto"`: calls of 32 steps or more, and none
   * after a call where most steps fell back to the full head.
   */
  readonly headScreen: HeadScreenMode;
  /** Invocations along the columns of a `"ksplit"` workgroup (4 columns each). */
  readonly matmulWorkgroup: number;
  /** k-slices of a `"ksplit"` workgroup. */
  readonly matmulKSlices: number;
  /**
   * Steps per submission. GPUs: 32, so that the GPU starts on the first steps while the rest are
   * recorded. CPU adapters: 1, because lavapipe runs a submission on the thread that submits it, and
   * the event loop runs between submissions.
   */
  readonly submitSteps: number;
  /**
   * Blocks per submission within a step (0: the whole step in one). CPU adapters: 4, so that a 10 ms
   * timer in the same process is never more than about 100 ms late (52 ms at worst in f16 and 93 ms
   * in f32 for GPT-2 124M on lavapipe, against 2.9-3.2 s with 32 steps a submission; whole steps
   * gave 137 and 321 ms). It costs about 8% of decoding speed there (`bench/backend_ab.ts`), which
   * a process with nothing else to run can take back with `{ submitSteps: 32, submitBlocks: 0 }`, as
   * the command line does. `bench/event_loop_lag.ts` measures it.
   */
  readonly submitBlocks: number;
}

/**
 * Choices to make instead of the adapter's defaults: for tests and benchmarks.
 *
 * @experimental The fields and kernels may change between minor versions.
 */
export interface BackendOptions {
  /** The matrix kernel family. */
  matmul?: MatmulFamily;
  /** The attention kernel. */
  attention?: AttentionKind;
  /** The greedy-choice kernel. */
  argmax?: ArgmaxKind;
  /** Whether products read `x` from a uniform buffer where it fits. */
  xUniform?: boolean;
  /** When the greedy head is screened. */
  headScreen?: HeadScreenMode;
  /** Steps per submission (at least 1). */
  submitSteps?: number;
  /** Blocks per submission within a step (0: the whole step). */
  submitBlocks?: number;
}

/** Most token rows per workgroup of the k-split kernel. */
export const KSPLIT_ROWS = 4;

/**
 * Most invocations of a k-split workgroup. 512 was within noise of 256 on an H200 (1,206 against
 * 1,196 tokens/s decoding at 128 new tokens), so the smaller stays.
 */
const KSPLIT_THREADS = 256;

/**
 * Invocations along the columns of a k-split workgroup: 4 on GPUs (more workgroups for the one-row
 * products of a decoding step), 16 on CPU adapters (contiguous loads per workgroup).
 */
const KSPLIT_WG = { gpu: 4, cpu: 16 } as const;

const FAMILIES: readonly MatmulFamily[] = ["wide", "ksplit"];
const ATTENTIONS: readonly AttentionKind[] = ["serial", "block", "parts"];
const ARGMAXES: readonly ArgmaxKind[] = ["serial", "split"];
const SCREENS: readonly HeadScreenMode[] = ["auto", "always", "never"];

function pick<T>(value: unknown, allowed: readonly T[], what: string): T | undefined {
  if (value === undefined) return undefined;
  if (!allowed.includes(value as T)) {
    throw new RangeError(
      `Cannot create the model: backend.${what} '${value}' is not one of ${allowed.map((a) => `"${a}"`).join(", ")}`,
    );
  }
  return value as T;
}

/**
 * The backend profile for an adapter and a head size, with any overrides applied. Choices that
 * depend on others (the fused LayerNorm, `x` from a uniform buffer, the head screen) follow them
 * unless given.
 *
 * @param gpu The device and what is known of its adapter.
 * @param model The model's head size (`emb_dim / n_heads`) and weight storage.
 * @param options Choices to make instead of the defaults.
 * @returns The profile.
 * @throws {RangeError} On an unknown choice or one the adapter or head size cannot run.
 */
export function chooseBackend(
  gpu: GpuContext,
  model: { headDim: number; dtype?: WeightDType },
  options: BackendOptions = {},
): BackendProfile {
  const { headDim } = model;
  if (options === null || typeof options !== "object") {
    throw new TypeError(`Cannot create the model: backend must be an object like { attention: "parts" }`);
  }
  checkOptions(
    options,
    ["matmul", "attention", "argmax", "xUniform", "headScreen", "submitSteps", "submitBlocks"],
    "create the model (backend)",
  );
  for (const [key, min] of [["submitSteps", 1], ["submitBlocks", 0]] as const) {
    const v = options[key];
    if (v !== undefined && (!Number.isInteger(v) || v < min)) {
      throw new RangeError(`Cannot create the model: backend.${key} '${v}' must be an integer of at least ${min}`);
    }
  }
  const cpu = gpu.isCpu;
  const matmul = pick(options.matmul, FAMILIES, "matmul") ?? (cpu ? "wide" : "ksplit");
  const vec4 = headDim % 4 === 0;
  const attention = pick(options.attention, ATTENTIONS, "attention") ?? (!vec4 ? "parts" : cpu ? "serial" : "block");
  if (attention !== "parts" && !vec4) {
    throw new RangeError(
      `Cannot create the model: backend.attention '${attention}' reads vec4s and head size ${headDim} is not a multiple of 4, use "parts"`,
    );
  }
  const argmax = pick(options.argmax, ARGMAXES, "argmax") ?? (cpu ? "serial" : "split");
  const uniformFits = gpu.device.limits.maxUniformBufferBindingSize >= MM_X_UNIFORM_VEC4S * 16;
  if (options.xUniform !== undefined && typeof options.xUniform !== "boolean") {
    throw new RangeError(`Cannot create the model: backend.xUniform '${options.xUniform}' is not true or false`);
  }
  const xUniform = options.xUniform ?? (matmul === "wide" && uniformFits);
  if (xUniform && (matmul !== "wide" || !uniformFits)) {
    throw new RangeError(
      `Cannot create the model: backend.xUniform needs the "wide" matrix kernel and 64 KiB uniform bindings, leave it out`,
    );
  }
  // the screen keeps an 8-bit copy of the head: with 8-bit weights it would save nothing
  const screenable = matmul === "wide" && argmax === "serial" && model.dtype !== "q8";
  const headScreen = pick(options.headScreen, SCREENS, "headScreen") ?? (screenable ? "auto" : "never");
  if (headScreen !== "never" && !screenable) {
    throw new RangeError(
      `Cannot create the model: backend.headScreen '${headScreen}' needs the "wide" matrix kernel, the "serial" argmax and f32 or f16 weights, use "never"`,
    );
  }
  const wg = KSPLIT_WG[cpu ? "cpu" : "gpu"];
  const limits = gpu.device.limits;
  const byLimit = Math.floor(Math.min(KSPLIT_THREADS, limits.maxComputeInvocationsPerWorkgroup) / wg);
  // the partial sums of KSPLIT_ROWS rows (KSPLIT_ROWS * KS * WG vec4s) fit the kernel's 1024-entry array
  const kSlices = cpu ? 1 : Math.max(1, Math.min(byLimit, Math.floor(1024 / (KSPLIT_ROWS * wg))));
  return Object.freeze({
    adapter: cpu ? "cpu" : "gpu",
    matmul,
    fuseLayerNorm: matmul === "ksplit",
    attention,
    argmax,
    xUniform,
    headScreen,
    matmulWorkgroup: wg,
    matmulKSlices: kSlices,
    submitSteps: options.submitSteps ?? (cpu ? 1 : 32),
    submitBlocks: options.submitBlocks ?? (cpu ? 4 : 0),
  });
}
