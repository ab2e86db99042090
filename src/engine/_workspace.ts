/**
 * The activation and key/value cache buffers of a model, named as in the book, sized for the
 * largest call so far: made once and reused by every later call that fits.
 *
 * @module
 */

import type { GPTConfig } from "../weights/config.ts";
import { roundUp } from "../gpu/weights.ts";
import {
  ARGMAX_PARTS,
  ATTENTION_PARAMS,
  encodeParams,
  MM_X_UNIFORM_VEC4S,
  STEP_UNIFORM_BYTES,
} from "../../kernels/mod.ts";
import { BufferUsage } from "../gpu/flags.ts";

/** What a workspace must hold: batch rows, token rows of a step, row length, cache positions. */
export interface WorkspaceSize {
  /** Batch rows. */
  B: number;
  /** Token rows of the widest step (B x its tokens). */
  rows: number;
  /** Length of a token row (prompt and new tokens). */
  L: number;
  /** Cache positions per batch row. */
  cap: number;
}

/** How the buffers are bound: `x` also as a uniform buffer, and the split argmax's parts. */
export interface WorkspaceOptions {
  /** The products' inputs may be bound as uniform buffers. */
  xUniform: boolean;
  /** The greedy choice runs in parts and needs a buffer for them. */
  splitArgmax: boolean;
  /** Padded vocabulary (row stride of the logits). */
  vp: number;
}

/** The buffers one call runs on; each belongs to the workspace and goes with it. */
export class Workspace {
  /** Batch rows, token rows, row length (a multiple of 64) and cache positions it holds. */
  readonly size: WorkspaceSize;
  /** Token rows, `[B, L]` u32: the prompts, and each step's choice written after its window. */
  readonly tokens: GPUBuffer;
  /** The current step (a `Step` uniform, copied from the call's step table before each step). */
  readonly step: GPUBuffer;
  /** The residual stream, `[rows, C]`. */
  readonly x: GPUBuffer;
  /** A LayerNorm's output (`norm1(x)`, `norm2(x)`, `final_norm(x)`), `[rows, C]`. */
  readonly x_norm: GPUBuffer;
  /** Queries, keys and values, `[rows, 3C]`. */
  readonly qkv: GPUBuffer;
  /** The attention's `context_vec` (heads side by side), `[rows, C]`. */
  readonly context_vec: GPUBuffer;
  /** The feed-forward's hidden layer, after the GELU, `[rows, 4C]`. */
  readonly ff_hidden: GPUBuffer;
  /** The final norm of each row's last token, `[B, C]`. */
  readonly last: GPUBuffer;
  /** The head's logits for each row's last token, `[B, vp]`. */
  readonly logits: GPUBuffer;
  /** The split argmax's best of each part, `[B, parts, 2]`. */
  readonly parts?: GPUBuffer;
  /** The sampler's settings. */
  readonly sampleParams: GPUBuffer;
  /** The attention's shapes and scale. */
  readonly attnParams: GPUBuffer;
  /** Keys per block, `[B, cap, C]`. */
  readonly kCache: GPUBuffer[];
  /** Values per block, `[B, cap, C]`. */
  readonly vCache: GPUBuffer[];
  #buffers: GPUBuffer[] = [];
  #device: GPUDevice;

  /**
   * Allocates the buffers.
   *
   * @param device The device.
   * @param cfg The model's configuration.
   * @param size What the buffers must hold.
   * @param options How they are bound.
   * @throws {RangeError} When a buffer would exceed the adapter's binding limit.
   */
  constructor(device: GPUDevice, cfg: Required<GPTConfig>, size: WorkspaceSize, options: WorkspaceOptions) {
    this.#device = device;
    const L = roundUp(size.L, 64);
    this.size = { ...size, L };
    const { B, rows, cap } = this.size;
    const { emb_dim: C, n_heads: H, n_layers } = cfg;
    const hd = C / H;
    try {
      this.tokens = this.#storage("tokens", B * L * 4);
      this.step = this.#track(device.createBuffer({
        label: "step",
        size: STEP_UNIFORM_BYTES,
        usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST,
      }));
      // the inputs of the matrix products, also bound as uniform buffers where their rows fit one binding
      const xu = options.xUniform;
      const xin = (label: string, bytes: number) =>
        xu
          ? this.#storage(label, Math.max(bytes, MM_X_UNIFORM_VEC4S * 16), BufferUsage.UNIFORM)
          : this.#storage(label, bytes);
      this.x = this.#storage("x", rows * C * 4);
      this.x_norm = xin("x_norm", rows * C * 4);
      this.qkv = this.#storage("qkv", rows * 3 * C * 4);
      this.context_vec = xin("context_vec", rows * C * 4);
      this.ff_hidden = xin("ff_hidden", rows * 4 * C * 4);
      this.last = xin("last", B * C * 4);
      this.logits = this.#storage("logits", B * options.vp * 4);
      if (options.splitArgmax) this.parts = this.#storage("argmax.parts", B * ARGMAX_PARTS * 8);
      this.sampleParams = this.uniform("sample.params", new Uint32Array(8));
      this.attnParams = this.uniform(
        "attn.params",
        encodeParams(ATTENTION_PARAMS, { C, H, hd, cap, scale: 1 / Math.sqrt(hd) }),
      );
      this.kCache = [];
      this.vCache = [];
      for (let l = 0; l < n_layers; l++) {
        this.kCache.push(this.#storage(`k_cache${l}`, B * cap * C * 4));
        this.vCache.push(this.#storage(`v_cache${l}`, B * cap * C * 4));
      }
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  /**
   * Whether this workspace holds a call of the given size.
   *
   * @param s The call's size.
   * @returns True when every dimension fits.
   */
  fits(s: WorkspaceSize): boolean {
    const z = this.size;
    return z.B >= s.B && z.rows >= s.rows && z.L >= s.L && z.cap >= s.cap;
  }

  /**
   * A uniform buffer of u32 words that lives as long as the workspace.
   *
   * @param label The buffer's label.
   * @param words Its contents (padded to 8 words at least).
   * @returns The buffer.
   */
  uniform(label: string, words: Uint32Array<ArrayBuffer>): GPUBuffer {
    const data = new Uint32Array(roundUp(Math.max(words.length, 8), 4));
    data.set(words);
    const b = this.#track(this.#device.createBuffer({
      label,
      size: data.byteLength,
      usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST,
    }));
    this.#device.queue.writeBuffer(b, 0, data);
    return b;
  }

  /**
   * Takes ownership of a buffer: it is destroyed with the workspace.
   *
   * @param b The buffer.
   * @returns The buffer.
   */
  adopt(b: GPUBuffer): GPUBuffer {
    return this.#track(b);
  }

  /** Frees every buffer. */
  destroy(): void {
    for (const b of this.#buffers) b.destroy();
    this.#buffers = [];
  }

  #track(b: GPUBuffer): GPUBuffer {
    this.#buffers.push(b);
    return b;
  }

  #storage(label: string, bytes: number, extra = 0): GPUBuffer {
    const maxBinding = this.#device.limits.maxStorageBufferBindingSize;
    if (bytes > maxBinding) {
      throw new RangeError(
        `Cannot run the model: its ${label} buffer needs ${bytes} bytes, ${
          bytes - maxBinding
        } over the adapter's binding limit of ${maxBinding}, use a smaller batch or context`,
      );
    }
    return this.#track(this.#device.createBuffer({
      label,
      size: roundUp(Math.max(bytes, 16), 16),
      usage: BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC | extra,
    }));
  }
}
