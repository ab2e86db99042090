/**
 * What a training step keeps between its forward and backward passes (llm.c's `ActivationTensors`),
 * and the gradients of the activations, sized from batch and context and checked against the
 * adapter's limits before anything is allocated.
 *
 * @module
 */

import type { GPTConfig } from "../../weights/config.ts";
import { BufferUsage } from "../../gpu/flags.ts";

/** One block's saved activations. */
export interface BlockActivations {
  /** The residual stream after the attention (`x + att(norm1(x))`). */
  res2: GPUBuffer;
  /** `norm1(x)` and its per-row mean and sqrt(var + eps). */
  ln1: GPUBuffer;
  stats1: GPUBuffer;
  /** Queries, keys and values, `[rows, 3C]`. */
  qkv: GPUBuffer;
  /** Attention weights, `[B, H, T, T]`. */
  att: GPUBuffer;
  /** The attention's context vectors, `[rows, C]`. */
  atty: GPUBuffer;
  /** `norm2(x)` and its statistics. */
  ln2: GPUBuffer;
  stats2: GPUBuffer;
  /** The feed-forward's hidden layer before and after GELU, `[rows, 4C]`. */
  fch: GPUBuffer;
  fchGelu: GPUBuffer;
}

/** The buffers of a training step for up to `rows = batch * T` tokens. */
export class Activations {
  /** Batch rows it holds. */
  readonly batch: number;
  /** Tokens per row. */
  readonly T: number;
  /** Rows of logits computed at once, and the padded vocabulary (their stride). */
  readonly logitRows: number;
  readonly vp: number;
  /** Token ids and targets, u32. */
  readonly ids: GPUBuffer;
  readonly targets: GPUBuffer;
  /** Each row's loss, and where it is read back. */
  readonly losses: GPUBuffer;
  readonly staging: GPUBuffer;
  /** The residual stream entering each block, and leaving the last: `n_layers + 1` buffers. */
  readonly res: GPUBuffer[];
  /** Per block. */
  readonly blocks: BlockActivations[];
  /** `final_norm(x)` and its statistics. */
  readonly lnf: GPUBuffer;
  readonly statsf: GPUBuffer;
  /** A block of logits (replaced by their gradient). */
  readonly logits: GPUBuffer;
  /** Gradients: the residual stream, a norm's output, the context vectors, q|k|v, the hidden layer, the scores. */
  readonly dres: GPUBuffer;
  readonly dln: GPUBuffer;
  readonly datty: GPUBuffer;
  readonly dqkv: GPUBuffer;
  readonly dfch: GPUBuffer;
  readonly ds: GPUBuffer;
  /** Per vocabulary chunk: the batch's distinct ids in it, where each one's rows start, the rows. */
  readonly csr: { uniq: GPUBuffer; start: GPUBuffer; pos: GPUBuffer }[];
  /** Scratch rows `[rows, C]` for a dropped shortcut's output, and its gradient. */
  readonly tmp: GPUBuffer;
  readonly dtmp: GPUBuffer;
  /** A buffer that kernels with nothing to read are given. */
  readonly none: GPUBuffer;
  #all: GPUBuffer[] = [];

  /**
   * Allocates the buffers.
   *
   * @param device The device.
   * @param cfg The configuration.
   * @param shape Batch rows and tokens per row, and the number of vocabulary chunks.
   * @throws {RangeError} When a buffer would pass the adapter's binding limit.
   */
  constructor(device: GPUDevice, cfg: Required<GPTConfig>, shape: { batch: number; T: number; chunks: number }) {
    const { emb_dim: C, n_heads: H, vocab_size: V, n_layers: L } = cfg;
    const { batch: B, T } = shape;
    this.batch = B;
    this.T = T;
    const rows = B * T;
    const limit = device.limits.maxStorageBufferBindingSize;
    this.vp = Math.ceil(V / 4) * 4;
    this.logitRows = Math.min(rows, Math.floor(limit / (this.vp * 4)), 65535);
    const need: [string, number][] = [
      ["attention weights", B * H * T * T * 4],
      ["feed-forward activations", rows * 4 * C * 4],
    ];
    for (const [what, bytes] of need) {
      if (bytes > limit) {
        throw new RangeError(
          `Cannot train with batch ${B} x context ${T}: its ${what} need ${bytes} bytes in one binding, over ` +
            `the adapter's limit of ${limit}; use a smaller batch or context`,
        );
      }
    }
    const buf = (label: string, floats: number) => {
      const b = device.createBuffer({
        label,
        size: Math.max(16, floats * 4),
        usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST,
      });
      this.#all.push(b);
      return b;
    };
    this.ids = buf("ids", rows);
    this.targets = buf("targets", rows);
    this.losses = buf("losses", rows);
    this.staging = device.createBuffer({
      label: "losses read",
      size: rows * 4,
      usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST,
    });
    this.#all.push(this.staging);
    this.res = Array.from({ length: L + 1 }, (_, l) => buf(`res${l}`, rows * C));
    this.blocks = Array.from({ length: L }, (_, l) => ({
      res2: buf(`res2.${l}`, rows * C),
      ln1: buf(`ln1.${l}`, rows * C),
      stats1: buf(`stats1.${l}`, rows * 2),
      qkv: buf(`qkv.${l}`, rows * 3 * C),
      att: buf(`att.${l}`, B * H * T * T),
      atty: buf(`atty.${l}`, rows * C),
      ln2: buf(`ln2.${l}`, rows * C),
      stats2: buf(`stats2.${l}`, rows * 2),
      fch: buf(`fch.${l}`, rows * 4 * C),
      fchGelu: buf(`fch_gelu.${l}`, rows * 4 * C),
    }));
    this.lnf = buf("lnf", rows * C);
    this.statsf = buf("statsf", rows * 2);
    this.logits = buf("logits", this.logitRows * this.vp);
    this.dres = buf("dres", rows * C);
    this.dln = buf("dln", rows * C);
    this.datty = buf("datty", rows * C);
    this.dqkv = buf("dqkv", rows * 3 * C);
    this.dfch = buf("dfch", rows * 4 * C);
    this.ds = buf("ds", B * H * T * T);
    this.csr = Array.from({ length: shape.chunks }, (_, i) => ({
      uniq: buf(`uniq${i}`, rows),
      start: buf(`start${i}`, rows + 1),
      pos: buf(`pos${i}`, rows),
    }));
    this.tmp = buf("tmp", rows * C);
    this.dtmp = buf("dtmp", rows * C);
    this.none = buf("none", 4);
  }

  /** Bytes allocated. */
  get bytes(): number {
    return this.#all.reduce((s, b) => s + b.size, 0);
  }

  /** Frees every buffer. */
  destroy(): void {
    for (const b of this.#all) b.destroy();
  }
}
