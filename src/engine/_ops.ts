/**
 * The ops of the forward pass: each knows its pipeline, its bindings and its dispatch size for a
 * step's shape, so that the forward pass (`forward.ts`) is a list of ops in the book's order with
 * no adapter choices in it. `_op_factory.ts` makes them on one workspace.
 *
 * @module
 */

import type { Kernels } from "./_kernels.ts";
import type { Indirect, Recorder } from "./_recorder.ts";
import { rowsPerWorkgroup } from "./_kernels.ts";

/** The shape of one step: batch rows and tokens per row. */
export interface StepShape {
  /** Batch rows. */
  B: number;
  /** Tokens per row in the step. */
  T: number;
}

/** One op of the forward pass: records its dispatches for a step. */
export interface Op {
  /** The op's name in profiles (`"matmul qkv"`, `"attention"`, ...). */
  readonly name: string;
  /**
   * Records the op's dispatches.
   *
   * @param rec Where dispatches go.
   * @param s The step's shape.
   */
  record(rec: Recorder, s: StepShape): void;
}

/** What a product reads: a buffer of rows, normalised on the fly with `norm`'s scale and shift when set. */
export interface ProductInput {
  /** The rows. */
  buffer: GPUBuffer;
  /** LayerNorm scale then shift, when the product normalises its input itself. */
  norm?: GPUBuffer;
}

/** A LayerNorm op and what the next product reads. */
export interface NormOp extends Op {
  /** The normalised rows, or the rows and the norm's weights where the product does the norm. */
  readonly output: ProductInput;
}

/** Which rows a product runs on: every token of the step, each batch row's last, or a fixed count. */
export type RowsOf = "tokens" | "batch" | number;

/** What a product does after the sums: bias, GELU, add into the output (the residual). */
export interface ProductEpilogue {
  /** The bias, `[N]`. */
  bias?: GPUBuffer;
  /** GELU of the result. */
  gelu?: boolean;
  /** Add into the output instead of overwriting it. */
  residual?: boolean;
}

/** Where a product writes: the buffer, its row stride and column offset, and the rows. */
export interface ProductOutput {
  /** The output rows. */
  buffer: GPUBuffer;
  /** Which rows the product runs on (default every token of the step). */
  rows?: RowsOf;
  /** Row stride of the output (default N). */
  ldy?: number;
  /** Column of the output where this product's columns start (default 0). */
  offset?: number;
  /** Byte range of the output buffer to bind (default all of it). */
  range?: { offset: number; size: number };
  /** First row of `x` to read (with a fixed row count). */
  xRow0?: number;
}

/** The matrix kernel's `m_mode` for each kind of row count. */
export const ROWS_MODE = { tokens: 0, batch: 1 } as const;

function rowsFor(rows: RowsOf, s: StepShape): number {
  return rows === "tokens" ? s.B * s.T : rows === "batch" ? s.B : rows;
}

/** A linear layer: `y = x W + b`, with its epilogue, on the rows of a step. */
export class Linear implements Op {
  /** The op's name. */
  readonly name: string;
  #kernels: Kernels;
  #K: number;
  #N: number;
  #rows: RowsOf;
  #group: GPUBindGroup;
  #groupXu?: GPUBindGroup;

  /**
   * Records nothing yet: see {@linkcode OpFactory.linear}.
   *
   * @param name The op's name.
   * @param kernels The model's kernels.
   * @param shape Inputs, outputs and rows.
   * @param groups The bind groups: storage `x`, and uniform `x` where the profile uses it.
   */
  constructor(
    name: string,
    kernels: Kernels,
    shape: { K: number; N: number; rows: RowsOf },
    groups: { storage: GPUBindGroup; uniform?: GPUBindGroup },
  ) {
    this.name = name;
    this.#kernels = kernels;
    this.#K = shape.K;
    this.#N = shape.N;
    this.#rows = shape.rows;
    this.#group = groups.storage;
    this.#groupXu = groups.uniform;
  }

  #choose(rows: number): [GPUComputePipeline, GPUBindGroup] {
    const xu = this.#groupXu !== undefined && this.#kernels.xUniformFor(rows, this.#K);
    return [this.#kernels.matmulPipeline(rows, xu), xu ? this.#groupXu! : this.#group];
  }

  record(rec: Recorder, s: StepShape): void {
    const rows = rowsFor(this.#rows, s);
    const tm = rowsPerWorkgroup(this.#kernels.profile, rows);
    rec.dispatch(this.name, ...this.#choose(rows), Math.ceil(this.#N / this.#kernels.columns), Math.ceil(rows / tm));
  }

  /**
   * Records the product with its workgroup counts read from a buffer (the head screen's fallback).
   *
   * @param rec Where dispatches go.
   * @param s The step's shape.
   * @param at The counts.
   */
  recordIndirect(rec: Recorder, s: StepShape, at: Indirect): void {
    rec.dispatchIndirect(`${this.name} (fallback)`, ...this.#choose(rowsFor(this.#rows, s)), at);
  }

  /**
   * Workgroup counts of a dispatch over `rows` rows.
   *
   * @param rows Rows of the product.
   * @returns The counts along x and y.
   */
  workgroups(rows: number): [number, number] {
    return [
      Math.ceil(this.#N / this.#kernels.columns),
      Math.ceil(rows / rowsPerWorkgroup(this.#kernels.profile, rows)),
    ];
  }
}

/** An op of one kernel (one dispatch per bind group), with its dispatch size a function of the step. */
export class Dispatch implements Op {
  readonly name: string;
  #pipe: GPUComputePipeline;
  #groups: GPUBindGroup[];
  #size: (s: StepShape) => [number, number?, number?];
  constructor(
    name: string,
    pipe: GPUComputePipeline,
    groups: GPUBindGroup[],
    size: (s: StepShape) => [number, number?, number?],
  ) {
    this.name = name;
    this.#pipe = pipe;
    this.#groups = groups;
    this.#size = size;
  }
  record(rec: Recorder, s: StepShape): void {
    for (const g of this.#groups) rec.dispatch(this.name, this.#pipe, g, ...this.#size(s));
  }
}

/** A sequence of ops recorded one after another. */
export class Sequence implements Op {
  readonly name: string;
  #ops: Op[];
  constructor(name: string, ops: Op[]) {
    this.name = name;
    this.#ops = ops;
  }
  record(rec: Recorder, s: StepShape): void {
    for (const op of this.#ops) op.record(rec, s);
  }
}
