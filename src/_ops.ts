/**
 * The ops of the forward pass: each knows its pipeline, its bindings and its dispatch size for a
 * step's shape, so that the forward pass (`forward.ts`) is a list of ops in the book's order with
 * no adapter choices in it. {@linkcode OpFactory} makes them on one workspace.
 *
 * @module
 */

import type { GPTConfig } from "./config.ts";
import type { Kernels } from "./_kernels.ts";
import type { Indirect, Recorder } from "./_recorder.ts";
import type { Workspace } from "./_workspace.ts";
import type { GpuMatrix, VocabChunk } from "./gpu/weights.ts";
import { type KernelSpec, layoutOf } from "./gpu/pipelines.ts";
import { rowsPerWorkgroup } from "./_kernels.ts";
import { ARGMAX_PARTS, MM_ADD, MM_BIAS, MM_GELU, MM_LN, MM_X_UNIFORM_VEC4S, SAMPLE } from "../kernels/mod.ts";

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

const ROWS_MODE = { tokens: 0, batch: 1 } as const;

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

/** An op of one kernel, with its dispatch size a function of the step. */
class Dispatch implements Op {
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
class Sequence implements Op {
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

/** An op with nothing to dispatch (a LayerNorm that the next product computes). */
const NOTHING = (name: string): Op => ({ name, record() {} });

/** f32 bits as a u32. */
function bits(x: number): number {
  return new Uint32Array(new Float32Array([x]).buffer)[0];
}

/** Makes the ops of one model on one workspace: params, bind groups and pipelines. */
export class OpFactory {
  #device: GPUDevice;
  #kernels: Kernels;
  #ws: Workspace;
  #cfg: Required<GPTConfig>;
  #vp: number;
  #uniform: (label: string, words: number[]) => GPUBuffer;

  /**
   * Binds ops to a workspace.
   *
   * @param device The device.
   * @param kernels The model's kernels (compiled before any op records).
   * @param ws The workspace.
   * @param model The model's configuration and padded vocabulary (row stride of the logits).
   * @param uniform Makes the ops' parameter buffers (default: buffers of the workspace).
   */
  constructor(
    device: GPUDevice,
    kernels: Kernels,
    ws: Workspace,
    model: { cfg: Required<GPTConfig>; vp: number },
    uniform?: (label: string, words: number[]) => GPUBuffer,
  ) {
    this.#device = device;
    this.#kernels = kernels;
    this.#ws = ws;
    this.#cfg = model.cfg;
    this.#vp = model.vp;
    this.#uniform = uniform ?? ((label, words) => ws.uniform(label, words));
  }

  #bind(spec: KernelSpec, label: string, res: (GPUBuffer | GPUBufferBinding)[]): GPUBindGroup {
    return this.#device.createBindGroup({
      label,
      layout: layoutOf(this.#device, spec),
      entries: res.map((r, binding) => ({ binding, resource: r instanceof GPUBuffer ? { buffer: r } : r })),
    });
  }

  /**
   * Token and position embeddings, added: `x = tok_emb(idx) + pos_emb(pos)` for every token of the step.
   *
   * @param tok The token embedding's vocabulary chunks.
   * @param pos The position embedding.
   * @returns The op.
   */
  embedding(tok: VocabChunk[], pos: GPUBuffer): Op {
    const C = this.#cfg.emb_dim;
    const spec = this.#kernels.embedding;
    const ws = this.#ws;
    const groups = tok.map((c) =>
      this.#bind(spec, "embedding", [
        this.#uniform("embed.params", [C, c.v0, c.N, 0]),
        ws.step,
        ws.tokens,
        c.buffer,
        pos,
        ws.x,
      ])
    );
    return new Dispatch("embedding", this.#kernels.pipeline(spec), groups, (s) => [Math.ceil(C / 64), s.B * s.T]);
  }

  /**
   * A LayerNorm of `x` into `out`, or nothing where the profile has the next product normalise its input.
   *
   * @param name The norm's name in the book (`norm1`, `norm2`, `final_norm`).
   * @param x The rows.
   * @param weight Scale then shift.
   * @param out Where the normalised rows go.
   * @param options `lastOnly`: only each batch row's last token; `fusable`: the next product may do it.
   * @returns The op and what the next product reads.
   */
  layerNorm(
    name: string,
    x: GPUBuffer,
    weight: GPUBuffer,
    out: GPUBuffer,
    options: { lastOnly?: boolean; fusable?: boolean } = {},
  ): NormOp {
    if (options.fusable && this.#kernels.profile.fuseLayerNorm) {
      return { ...NOTHING(name), output: { buffer: x, norm: weight } };
    }
    const { emb_dim: C, layer_norm_epsilon: eps } = this.#cfg;
    const ws = this.#ws;
    const spec = this.#kernels.layerNorm;
    const last = options.lastOnly ? 1 : 0;
    const group = this.#bind(spec, name, [
      this.#uniform(`${name}.params`, [C, last, bits(eps)]),
      ws.step,
      x,
      weight,
      out,
    ]);
    const op = new Dispatch("layer_norm", this.#kernels.pipeline(spec), [group], (s) => [last ? s.B : s.B * s.T]);
    return Object.assign(op, { output: { buffer: out } });
  }

  /**
   * A linear layer `y = x W (+ b)`, with GELU or a residual add after it.
   *
   * @param name The op's name in profiles.
   * @param x What it reads.
   * @param w The weight.
   * @param epilogue Bias, GELU, residual.
   * @param y Where it writes.
   * @returns The op.
   */
  linear(name: string, x: ProductInput, w: GpuMatrix, epilogue: ProductEpilogue, y: ProductOutput): Linear {
    const { K, N } = w;
    const rows = y.rows ?? "tokens";
    const flags = (epilogue.bias ? MM_BIAS : 0) | (epilogue.gelu ? MM_GELU : 0) | (epilogue.residual ? MM_ADD : 0) |
      (x.norm ? MM_LN : 0);
    const mMode = typeof rows === "number" ? 2 : ROWS_MODE[rows];
    const M = typeof rows === "number" ? rows : 0;
    const ws = this.#ws;
    const params = this.#uniform(`${name}.params`, [
      M,
      K,
      N,
      0,
      y.ldy ?? N,
      y.offset ?? 0,
      mMode,
      flags,
      y.xRow0 ?? 0,
      bits(this.#cfg.layer_norm_epsilon),
    ]);
    // unused bindings get a buffer of the right kind: the norm's weights or the weight matrix
    const bias = epilogue.bias ?? x.norm ?? w.buffer;
    const out: GPUBufferBinding = { buffer: y.buffer, ...y.range };
    const lnw = x.norm ?? bias;
    const k = this.#kernels;
    const storage = this.#bind(k.matmul, name, [params, ws.step, x.buffer, w.buffer, bias, out, lnw]);
    const uniform = k.matmulXu && !x.norm
      ? this.#bind(k.matmulXu, `${name}.xu`, [
        params,
        ws.step,
        { buffer: x.buffer, size: MM_X_UNIFORM_VEC4S * 16 },
        w.buffer,
        bias,
        out,
        lnw,
      ])
      : undefined;
    return new Linear(name, k, { K, N, rows }, { storage, uniform });
  }

  /**
   * Causal multi-head attention over the cache of block `l`: stores the step's keys and values at
   * their positions, then each query attends to every position up to its own.
   *
   * @param l The block.
   * @returns The op.
   */
  attention(l: number): Op {
    const ws = this.#ws;
    const spec = this.#kernels.attention;
    const H = this.#cfg.n_heads;
    const group = this.#bind(spec, `attention.${l}`, [
      ws.attnParams,
      ws.step,
      ws.qkv,
      ws.kCache[l],
      ws.vCache[l],
      ws.ctx,
    ]);
    const serial = this.#kernels.profile.attention === "serial";
    return new Dispatch(
      "attention",
      this.#kernels.pipeline(spec),
      [group],
      (s) => serial ? [Math.ceil(s.T * H / 64), s.B] : [s.T, H, s.B],
    );
  }

  /**
   * The greedy choice: each batch row's largest logit (the first on ties), written after its window.
   *
   * @returns The op.
   */
  argmax(): Op {
    const ws = this.#ws;
    const V = this.#cfg.vocab_size;
    const params = this.#uniform("argmax.params", [V, this.#vp, ARGMAX_PARTS, Math.ceil(V / ARGMAX_PARTS)]);
    const [first, final] = this.#kernels.argmax;
    const pipe = (spec: KernelSpec) => this.#kernels.pipeline(spec);
    if (!final) {
      return new Dispatch(
        "argmax",
        pipe(first),
        [this.#bind(first, "argmax", [params, ws.step, ws.logits, ws.tokens])],
        (
          s,
        ) => [s.B],
      );
    }
    return new Sequence("argmax", [
      new Dispatch("argmax", pipe(first), [this.#bind(first, "argmax", [params, ws.step, ws.logits, ws.parts!])], (
        s,
      ) => [ARGMAX_PARTS, s.B]),
      new Dispatch(
        "argmax",
        pipe(final),
        [this.#bind(final, "argmax_final", [params, ws.step, ws.parts!, ws.tokens])],
        (
          s,
        ) => [s.B],
      ),
    ]);
  }

  /**
   * Sampling: top-k, temperature, softmax, top-p and a seeded draw for each batch row.
   *
   * @returns The op (compile the sampler before recording it).
   */
  sample(): Op {
    const ws = this.#ws;
    const group = this.#bind(SAMPLE, "sample", [ws.sampleParams, ws.step, ws.logits, ws.tokens]);
    return {
      name: "sample",
      record: (rec, s) => rec.dispatch("sample", this.#kernels.pipeline(SAMPLE), group, s.B),
    };
  }

  /**
   * A sequence of ops recorded as one.
   *
   * @param name The name.
   * @param ops The ops, in order.
   * @returns The op.
   */
  sequence(name: string, ops: Op[]): Op {
    return new Sequence(name, ops);
  }
}
