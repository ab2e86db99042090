/**
 * The training ops as calls that record dispatches into a {@linkcode Program}: each knows its
 * kernel, params and grid, so that `step.ts` reads as the book's forward and backward.
 *
 * @module
 */

import { MMT_ACC, MMT_BIAS, MMT_TILE, MMT_TILE_ROWS } from "../../../kernels/mod.ts";
import type { Field, Program } from "./_program.ts";
import type { Param } from "./params.ts";

/** A matrix operand: a buffer, its row stride and first element (floats). */
export interface Mat {
  buffer: GPUBuffer;
  ld: number;
  at?: number;
}

const groups = (n: number, per: number) => Math.max(1, Math.ceil(n / per));

/**
 * The dropout sites of a training program and their masks' seeds: each site's dispatches (the
 * forward and the backward share a key, so they draw the same mask) get a new seed every step.
 */
export class DropoutSites {
  /** The drop probability. */
  readonly rate: number;
  #sites: { slot: number; params: Field[]; field: number; key: number }[] = [];

  /**
   * @param rate The config's `drop_rate`.
   */
  constructor(rate: number) {
    this.rate = rate;
  }

  /**
   * Tracks a dispatch whose params hold a mask's seed.
   *
   * @param slot The dispatch's slot.
   * @param params Its params.
   * @param field Which field is the seed.
   * @param key The mask (the same for a site's forward and backward).
   */
  track(slot: number, params: Field[], field: number, key: number): void {
    this.#sites.push({ slot, params, field, key });
  }

  /**
   * Gives every site its seed for one step.
   *
   * @param prog The program.
   * @param step A number that differs between steps.
   */
  reseed(prog: Program, step: number): void {
    for (const s of this.#sites) {
      s.params[s.field] = mix(mix(step, 0x9e3779b9) ^ s.key, s.key);
      prog.set(s.slot, s.params);
    }
  }
}

/** A 32-bit integer hash of two values (murmur3's finalizer). */
function mix(a: number, b: number): number {
  let h = (Math.imul(a ^ (b + 0x7f4a7c15), 0x85ebca6b) >>> 0) ^ (a >>> 13);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Records training ops. */
export class TrainOps {
  /** The program recorded into. */
  readonly prog: Program;
  #none: GPUBuffer;

  /**
   * @param prog The program.
   * @param none A buffer for bindings a dispatch does not use.
   */
  constructor(prog: Program, none: GPUBuffer) {
    this.prog = prog;
    this.#none = none;
  }

  /** `c[m, n] (+)= sum_k a[m, k] b[n, k] (+ bias[n])`, `m < M`, `n < N`. */
  mmNT(a: Mat, b: Mat, c: Mat, shape: { M: number; N: number; K: number; bias?: GPUBuffer; acc?: boolean }): void {
    const flags = (shape.bias ? MMT_BIAS : 0) | (shape.acc ? MMT_ACC : 0);
    this.#mm("mm_nt", a, b, c, shape, flags, shape.bias);
  }

  /** `c[m, n] (+)= sum_k a[m, k] b[k, n]`. */
  mmNN(a: Mat, b: Mat, c: Mat, shape: { M: number; N: number; K: number; acc?: boolean }): void {
    this.#mm("mm_nn", a, b, c, shape, shape.acc ? MMT_ACC : 0);
  }

  /** `c[m, n] += sum_k a[k, m] b[k, n]` (weights' gradients accumulate). */
  mmTN(a: Mat, b: Mat, c: Mat, shape: { M: number; N: number; K: number }): void {
    this.#mm("mm_tn", a, b, c, shape, MMT_ACC);
  }

  #mm(
    kernel: "mm_nt" | "mm_nn" | "mm_tn",
    a: Mat,
    b: Mat,
    c: Mat,
    s: { M: number; N: number; K: number },
    flags: number,
    bias?: GPUBuffer,
  ): void {
    this.prog.add(
      kernel,
      [s.M, s.N, s.K, a.ld, b.ld, c.ld, a.at ?? 0, b.at ?? 0, c.at ?? 0, flags, 0, 0],
      [a.buffer, b.buffer, bias ?? this.#none, c.buffer],
      [groups(s.N, MMT_TILE), groups(s.M, MMT_TILE_ROWS)],
    );
  }

  /**
   * A linear layer, `y = x W^T + b`, or with `acc` `y += x W^T + b` (the residual stream).
   *
   * @param x Input rows, `[rows, K]`.
   * @param w The weight, `[N, K]`, and its bias.
   * @param y Output rows, `[rows, N]`.
   * @param shape Rows, output and input features.
   */
  linear(
    x: GPUBuffer,
    w: { weight: Param; bias?: Param },
    y: GPUBuffer,
    shape: { rows: number; N: number; K: number; acc?: boolean },
  ): void {
    const { rows, N, K } = shape;
    this.mmNT({ buffer: x, ld: K }, { buffer: w.weight.buffer, ld: K }, { buffer: y, ld: N }, {
      M: rows,
      N,
      K,
      bias: w.bias?.buffer,
      acc: shape.acc,
    });
  }

  /**
   * A linear layer's backward: `dW += dy^T x`, `db += sum dy`, `dx = dy W`.
   *
   * @param dy The output's gradient, `[rows, N]`.
   * @param x The layer's input, `[rows, K]`.
   * @param w The weight and bias (their gradients receive the sums).
   * @param dx Receives the input's gradient, `[rows, K]`.
   * @param shape Rows, output and input features.
   */
  linearBackward(
    dy: GPUBuffer,
    x: GPUBuffer,
    w: { weight: Param; bias?: Param },
    dx: GPUBuffer,
    shape: { rows: number; N: number; K: number },
  ): void {
    const { rows, N, K } = shape;
    this.mmTN({ buffer: dy, ld: N }, { buffer: x, ld: K }, { buffer: w.weight.grad, ld: K }, { M: N, N: K, K: rows });
    if (w.bias) this.prog.add("colsum", [rows, N], [dy, w.bias.grad], [groups(N, 64)]);
    this.mmNN({ buffer: dy, ld: N }, { buffer: w.weight.buffer, ld: K }, { buffer: dx, ld: K }, {
      M: rows,
      N: K,
      K: N,
    });
  }

  /** LayerNorm of `rows` rows of width `C` (epsilon `eps`), keeping the statistics. */
  layerNorm(
    x: GPUBuffer,
    w: Param,
    y: GPUBuffer,
    stats: GPUBuffer,
    shape: { rows: number; C: number; eps: number },
  ): void {
    const { rows, C, eps } = shape;
    this.prog.add("ln_fwd", [rows, C, { f: eps }], [x, w.buffer, y, stats], [groups(rows, 64)]);
  }

  /** LayerNorm's backward: `dx += ...`, and its parameters' gradients. */
  layerNormBackward(
    x: GPUBuffer,
    w: Param,
    stats: GPUBuffer,
    dy: GPUBuffer,
    dx: GPUBuffer,
    shape: { rows: number; C: number },
  ): void {
    const { rows, C } = shape;
    this.prog.add("ln_bwd_x", [rows, C], [x, w.buffer, stats, dy, dx], [groups(rows, 64)]);
    this.prog.add("ln_bwd_w", [rows, C], [x, stats, dy, w.grad], [groups(C, 64)]);
  }

  /** `y = x` over `n` floats. */
  copy(x: GPUBuffer, y: GPUBuffer, n: number): void {
    this.prog.addFlat("copy", [n, 0], [x, y]);
  }

  /** `y = 0` over `n` floats. */
  zero(y: GPUBuffer, n: number): void {
    this.prog.addFlat("copy", [n, 1], [this.#none, y]);
  }

  /** `y += x` over `n` floats. */
  add(x: GPUBuffer, y: GPUBuffer, n: number): void {
    this.prog.addFlat("copy", [n, 2], [x, y]);
  }

  /** Dropout of `n` floats in place, with the mask of `key`. */
  dropout(y: GPUBuffer, n: number, sites: DropoutSites, key: number): void {
    const params: Field[] = [n, 0, { f: sites.rate }];
    sites.track(this.prog.addFlat("dropout", params, [y]), params, 1, key);
  }
}
