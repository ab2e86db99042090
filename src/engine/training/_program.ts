/**
 * A recorded list of dispatches that runs again and again with the same buffers: each dispatch's
 * uniform params live in one arena (256-byte slots), written once per run, so a training step
 * encodes hundreds of dispatches with no allocation.
 *
 * @module
 */

import * as K from "../../../kernels/mod.ts";
import type { KernelSpec } from "../../../kernels/mod.ts";
import { layoutOf, pipelineOf } from "../../gpu/pipelines.ts";
import { BufferUsage } from "../../gpu/flags.ts";

/** The training kernels by name. */
export const TRAIN_KERNELS = {
  mm_nt: K.MM_NT,
  mm_nn: K.MM_NN,
  mm_tn: K.MM_TN,
  embed_fwd: K.EMBED_FWD,
  embed_bwd: K.EMBED_BWD,
  pos_bwd: K.POS_BWD,
  ln_fwd: K.LN_FWD,
  ln_bwd_x: K.LN_BWD_X,
  ln_bwd_w: K.LN_BWD_W,
  gelu_fwd: K.GELU_FWD,
  gelu_bwd: K.GELU_BWD,
  att_fwd: K.ATT_FWD,
  att_bwd_scores: K.ATT_BWD_SCORES,
  att_bwd_qkv: K.ATT_BWD_QKV,
  ce: K.CE,
  adamw: K.ADAMW,
  sumsq: K.SUMSQ,
  clip_coef: K.CLIP_COEF,
  scale: K.SCALE,
  relayout: K.RELAYOUT,
  colsum: K.COLSUM,
  copy: K.COPY,
  dropout: K.DROPOUT,
} as const satisfies Record<string, KernelSpec>;

/** A training kernel's name. */
export type TrainKernel = keyof typeof TRAIN_KERNELS;

/** The compiled training pipelines of a device. */
export type TrainPipelines = Record<TrainKernel, GPUComputePipeline>;

/**
 * Compiles every training kernel (cached per device).
 *
 * @param device The device.
 * @returns The pipelines by name.
 */
export async function trainPipelines(device: GPUDevice): Promise<TrainPipelines> {
  const names = Object.keys(TRAIN_KERNELS) as TrainKernel[];
  const all = await Promise.all(names.map((n) => pipelineOf(device, TRAIN_KERNELS[n])));
  return Object.fromEntries(names.map((n, i) => [n, all[i]])) as TrainPipelines;
}

/** A uniform field: an unsigned integer, or a float (`{ f: x }`). */
export type Field = number | { f: number };

const SLOT = 256;
const MAX_GROUPS = 65535;

interface Dispatch {
  pipeline: GPUComputePipeline;
  group: GPUBindGroup;
  grid: [number, number, number];
}

/** Dispatches recorded once and run many times. */
export class Program {
  #device: GPUDevice;
  #pipes: TrainPipelines;
  #slots: Field[][] = [];
  #ops: (Dispatch | { slot: number; kernel: TrainKernel; buffers: GPUBuffer[]; grid: [number, number, number] })[] = [];
  #arena?: GPUBuffer;
  #data?: ArrayBuffer;
  #kernels: TrainKernel[] = [];

  /**
   * @param device The device.
   * @param pipes The compiled kernels.
   */
  constructor(device: GPUDevice, pipes: TrainPipelines) {
    this.#device = device;
    this.#pipes = pipes;
  }

  /**
   * Adds a dispatch.
   *
   * @param kernel The kernel.
   * @param params Its uniform's fields, in order.
   * @param buffers Its storage buffers, in binding order.
   * @param grid Workgroups in x, y and z.
   * @returns The dispatch's slot, for {@linkcode Program.set}.
   */
  add(kernel: TrainKernel, params: Field[], buffers: GPUBuffer[], grid: number[]): number {
    const g: [number, number, number] = [grid[0], grid[1] ?? 1, grid[2] ?? 1];
    if (g.some((n) => n > MAX_GROUPS)) {
      throw new RangeError(
        `Cannot record '${kernel}': its grid ${g.join(" x ")} is over ${MAX_GROUPS} workgroups a side`,
      );
    }
    this.#slots.push(params);
    this.#ops.push({ slot: this.#slots.length - 1, kernel, buffers, grid: g });
    this.#kernels.push(kernel);
    this.#arena = undefined;
    return this.#slots.length - 1;
  }

  /**
   * Adds an elementwise dispatch over `n` values, in workgroups of 256 laid out in 2-D.
   *
   * @param kernel The kernel.
   * @param params Its fields (the first is `n`).
   * @param buffers Its storage buffers.
   * @returns The slot.
   */
  addFlat(kernel: TrainKernel, params: Field[], buffers: GPUBuffer[]): number {
    const groups = Math.ceil((params[0] as number) / 256);
    const x = Math.min(groups, MAX_GROUPS);
    return this.add(kernel, params, buffers, [Math.max(1, x), Math.max(1, Math.ceil(groups / x))]);
  }

  /**
   * Changes a dispatch's params before the next run.
   *
   * @param slot The slot {@linkcode Program.add} returned.
   * @param params The new fields.
   */
  set(slot: number, params: Field[]): void {
    this.#slots[slot] = params;
    if (this.#data) writeFields(this.#data, slot, params);
  }

  #build(): void {
    const n = Math.max(1, this.#slots.length);
    this.#arena?.destroy();
    this.#arena = this.#device.createBuffer({
      label: "train params",
      size: n * SLOT,
      usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST,
    });
    this.#data = new ArrayBuffer(n * SLOT);
    this.#slots.forEach((f, i) => writeFields(this.#data!, i, f));
    this.#ops = this.#ops.map((op) => {
      if ("group" in op) return op;
      const spec = TRAIN_KERNELS[op.kernel];
      const group = this.#device.createBindGroup({
        label: op.kernel,
        layout: layoutOf(this.#device, spec),
        entries: [
          { binding: 0, resource: { buffer: this.#arena!, offset: op.slot * SLOT, size: 64 } },
          ...op.buffers.map((buffer, i) => ({ binding: i + 1, resource: { buffer } })),
        ],
      });
      return { pipeline: this.#pipes[op.kernel], group, grid: op.grid };
    });
  }

  /**
   * Records every dispatch, in order, into one compute pass of `encoder`.
   *
   * @param encoder The command encoder.
   */
  encode(encoder: GPUCommandEncoder): void {
    if (!this.#arena) this.#build();
    this.#device.queue.writeBuffer(this.#arena!, 0, this.#data!);
    const pass = encoder.beginComputePass();
    for (const op of this.#ops as Dispatch[]) {
      pass.setPipeline(op.pipeline);
      pass.setBindGroup(0, op.group);
      pass.dispatchWorkgroups(...op.grid);
    }
    pass.end();
  }

  /**
   * Records every dispatch in its own compute pass with timestamps before and after (for
   * profiling; needs `timestamp-query`).
   *
   * @param encoder The command encoder.
   * @param querySet Two timestamps per dispatch.
   * @returns Each dispatch's kernel, in order.
   */
  encodeTimed(encoder: GPUCommandEncoder, querySet: GPUQuerySet): TrainKernel[] {
    if (!this.#arena) this.#build();
    this.#device.queue.writeBuffer(this.#arena!, 0, this.#data!);
    (this.#ops as Dispatch[]).forEach((op, i) => {
      const pass = encoder.beginComputePass({
        timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
      });
      pass.setPipeline(op.pipeline);
      pass.setBindGroup(0, op.group);
      pass.dispatchWorkgroups(...op.grid);
      pass.end();
    });
    return this.#kernels;
  }

  /** The number of dispatches. */
  get length(): number {
    return this.#ops.length;
  }

  /** Frees the params arena. */
  destroy(): void {
    this.#arena?.destroy();
  }
}

function writeFields(data: ArrayBuffer, slot: number, fields: Field[]): void {
  const u = new Uint32Array(data, slot * SLOT, 16);
  const f = new Float32Array(data, slot * SLOT, 16);
  u.fill(0);
  fields.forEach((v, i) => {
    if (typeof v === "number") u[i] = v;
    else f[i] = v.f;
  });
}
