/**
 * The compiled kernels of one model: the WGSL each op runs under its backend profile and weight
 * type, with the override constants they run with. Pipelines are compiled ahead of a call (once
 * per device, see `gpu/pipelines.ts`) so that recording a step never waits.
 *
 * @module
 */

import type { BackendProfile } from "./backend.ts";
import { KSPLIT_ROWS } from "./backend.ts";
import type { WeightDType } from "../gpu/weights.ts";
import { type KernelSpec, pipelineOf } from "../gpu/pipelines.ts";
import {
  ARGMAX_FINAL,
  ARGMAX_PART,
  ARGMAX_SERIAL,
  ATTENTION,
  ATTENTION_BLOCK,
  ATTENTION_SERIAL,
  EMBEDDING,
  EMBEDDING_F16,
  EMBEDDING_Q8,
  LAYER_NORM,
  LAYER_NORM_SERIAL,
  MATMUL,
  MATMUL_F16,
  MATMUL_Q8,
  MATMUL_WIDE,
  MATMUL_WIDE_F16,
  MATMUL_WIDE_Q8,
  MATMUL_WIDE_XU,
  MATMUL_WIDE_XU_F16,
  MATMUL_WIDE_XU_Q8,
  MM_WIDE_COLS,
  MM_WIDE_ROWS,
  MM_X_UNIFORM_VEC4S,
  SAMPLE,
} from "../../kernels/mod.ts";

type Constants = Record<string, number>;

/**
 * Override constants of a matrix kernel for `tm` rows per workgroup.
 *
 * The wide kernel writes out the four weight rows of a k-quad for one-row products (UNROLL 4) and
 * walks them in a loop with several rows, which llvmpipe compiles about 3x faster and runs faster.
 * The k-split kernel keeps 4 k-quads of loads in flight per loop trip for one-row products on a GPU,
 * where a decoding step waits on the latency of each product's loads (on a CPU adapter the unrolled
 * loop takes llvmpipe seconds to compile). Its k-slices are the same for every `tm`, so each row's
 * sums run in the same order in a decoding step as in a full pass, and `generate` keeps the ids of
 * `generateTextSimple`.
 *
 * @param profile The backend profile.
 * @param tm Rows per workgroup.
 * @returns The constants.
 */
export function matmulConstants(profile: BackendProfile, tm: number): Constants {
  if (profile.matmul === "wide") return { TM: tm, WG: 16, UNROLL: tm === 1 ? 4 : 1 };
  const u = tm === 1 && profile.adapter === "gpu" ? 4 : 1;
  return { TM: tm, KS: profile.matmulKSlices, WG: profile.matmulWorkgroup, U: u };
}

/**
 * Rows per workgroup for a product over `M` rows: at most the family's limit, in as few tiles as
 * possible, wasting fewest rows.
 *
 * @param profile The backend profile.
 * @param M Rows of the product.
 * @returns Rows per workgroup.
 */
export function rowsPerWorkgroup(profile: BackendProfile, M: number): number {
  const max = profile.matmul === "wide" ? MM_WIDE_ROWS : KSPLIT_ROWS;
  return Math.ceil(M / Math.ceil(M / max));
}

/** The kernels of one model and their pipelines, compiled ahead of use. */
export class Kernels {
  /** The backend profile the kernels were chosen by. */
  readonly profile: BackendProfile;
  /** Token + position embedding. */
  readonly embedding: KernelSpec;
  /** LayerNorm. */
  readonly layerNorm: KernelSpec;
  /** Causal attention with the cache store. */
  readonly attention: KernelSpec;
  /** The greedy choice: one kernel, or the parts and the final pass. */
  readonly argmax: readonly KernelSpec[];
  /** The matrix kernel. */
  readonly matmul: KernelSpec;
  /** The matrix kernel with `x` from a uniform buffer (when the profile uses it). */
  readonly matmulXu?: KernelSpec;
  /** Output columns per matrix workgroup. */
  readonly columns: number;
  #device: GPUDevice;
  #attentionConstants: Constants;
  #pipes = new Map<string, GPUComputePipeline>();

  /**
   * Chooses the kernels.
   *
   * @param device The device.
   * @param profile The backend profile.
   * @param dtype How the weights are stored.
   * @param headDim The head size.
   */
  constructor(device: GPUDevice, profile: BackendProfile, dtype: WeightDType, headDim: number) {
    this.#device = device;
    this.profile = profile;
    const cpu = profile.adapter === "cpu";
    this.embedding = { f32: EMBEDDING, f16: EMBEDDING_F16, q8: EMBEDDING_Q8 }[dtype];
    this.layerNorm = cpu ? LAYER_NORM_SERIAL : LAYER_NORM;
    this.attention = { serial: ATTENTION_SERIAL, block: ATTENTION_BLOCK, parts: ATTENTION }[profile.attention];
    this.#attentionConstants = profile.attention === "block"
      ? { HD4: headDim / 4 }
      : profile.attention === "parts"
      ? (cpu ? { AW: 64, PARTS: 1 } : { AW: 256, PARTS: 4 })
      : {};
    this.argmax = profile.argmax === "serial" ? [ARGMAX_SERIAL] : [ARGMAX_PART, ARGMAX_FINAL];
    const wide = profile.matmul === "wide";
    this.matmul = wide
      ? { f32: MATMUL_WIDE, f16: MATMUL_WIDE_F16, q8: MATMUL_WIDE_Q8 }[dtype]
      : { f32: MATMUL, f16: MATMUL_F16, q8: MATMUL_Q8 }[dtype];
    if (profile.xUniform) {
      this.matmulXu = { f32: MATMUL_WIDE_XU, f16: MATMUL_WIDE_XU_F16, q8: MATMUL_WIDE_XU_Q8 }[dtype];
    }
    this.columns = wide ? 16 * MM_WIDE_COLS[dtype] : 4 * profile.matmulWorkgroup;
  }

  /** Compiles the kernels every call uses: embedding, LayerNorm, attention, argmax, one-row products. */
  async prepare(): Promise<void> {
    const base: [KernelSpec, Constants][] = [
      [this.embedding, {}],
      [this.layerNorm, {}],
      [this.attention, this.#attentionConstants],
      ...this.argmax.map((k): [KernelSpec, Constants] => [k, {}]),
    ];
    for (const [spec, c] of base) await this.#compile(spec.name, spec, c);
    await this.prepareRows([1]);
  }

  /**
   * Compiles the matrix kernels that products over these row counts use.
   *
   * @param rowCounts Rows of the products to come.
   */
  async prepareRows(rowCounts: Iterable<number>): Promise<void> {
    const todo = new Map<string, [KernelSpec, number]>();
    for (const n of rowCounts) {
      const tm = rowsPerWorkgroup(this.profile, n);
      todo.set(`${this.matmul.name}/${tm}`, [this.matmul, tm]);
      if (this.matmulXu) todo.set(`${this.matmulXu.name}/${tm}`, [this.matmulXu, tm]);
    }
    await Promise.all(
      [...todo].map(([key, [spec, tm]]) => this.#compile(key, spec, matmulConstants(this.profile, tm))),
    );
  }

  /** Compiles the sampler. */
  async prepareSampling(): Promise<void> {
    await this.#compile(SAMPLE.name, SAMPLE, {});
  }

  /**
   * Compiles a kernel with no override constants (the head screen's).
   *
   * @param specs The kernels.
   */
  async prepareAll(specs: KernelSpec[]): Promise<void> {
    await Promise.all(specs.map((s) => this.#compile(s.name, s, {})));
  }

  /**
   * Whether a product over `rows` rows of `K` inputs reads `x` from a uniform buffer.
   *
   * @param rows Rows of the product.
   * @param K Inputs per row.
   * @returns True when the profile uses it and all rows fit one binding.
   */
  xUniformFor(rows: number, K: number): boolean {
    return this.matmulXu !== undefined && rows * K <= 4 * MM_X_UNIFORM_VEC4S;
  }

  /**
   * The compiled pipeline of a kernel without row tiles.
   *
   * @param spec The kernel.
   * @returns Its pipeline.
   */
  pipeline(spec: KernelSpec): GPUComputePipeline {
    return this.#get(spec.name);
  }

  /**
   * The compiled matrix pipeline for a product over `rows` rows.
   *
   * @param rows Rows of the product.
   * @param xUniform The variant reading `x` from a uniform buffer.
   * @returns The pipeline.
   */
  matmulPipeline(rows: number, xUniform: boolean): GPUComputePipeline {
    const spec = xUniform ? this.matmulXu! : this.matmul;
    return this.#get(`${spec.name}/${rowsPerWorkgroup(this.profile, rows)}`);
  }

  #get(key: string): GPUComputePipeline {
    const p = this.#pipes.get(key);
    if (!p) throw new Error(`Pipeline '${key}' was not compiled`);
    return p;
  }

  async #compile(key: string, spec: KernelSpec, constants: Constants): Promise<void> {
    if (!this.#pipes.has(key)) this.#pipes.set(key, await pipelineOf(this.#device, spec, constants));
  }
}
