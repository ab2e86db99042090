/**
 * A model's trainable parameters on the GPU in PyTorch's layout (`nn.Linear` weight `[out, in]`),
 * each with its gradient: what the training kernels read and AdamW updates. The book's three
 * projections are one `[3C, C]` tensor (`W_query` rows, then `W_key`, then `W_value`) and each
 * LayerNorm one `[2C]` tensor (`scale`, then `shift`): AdamW is elementwise, so this changes no value.
 * The token embedding and output head are kept in vocabulary chunks that each fit one binding.
 *
 * @module
 */

import type { GPTConfig } from "../../weights/config.ts";
import type { InputTensor, ModelWeights } from "../../weights/model_weights.ts";
import { BufferUsage } from "../../gpu/flags.ts";

/** One trainable tensor. */
export interface Param {
  /** What it holds, in the book's names (`trf_blocks.0.att.qkv.weight`, `trf_blocks.0.norm1`, ...). */
  name: string;
  /** Floats. */
  size: number;
  /** The values. */
  buffer: GPUBuffer;
  /** The gradient, same size. */
  grad: GPUBuffer;
}

/** A vocabulary chunk of the token embedding or the head: rows `v0 .. v0 + rows`. */
export interface VocabParam extends Param {
  /** First token id. */
  v0: number;
  /** Rows in the chunk. */
  rows: number;
}

/** One block's parameters. */
export interface BlockParams {
  /** `norm1.scale` then `norm1.shift`. */
  norm1: Param;
  /** `att.W_query`, `W_key`, `W_value` weights as `[3C, C]`. */
  qkv: Param;
  /** Their biases, `[3C]` (with `qkv_bias`). */
  qkvBias?: Param;
  /** `att.out_proj.weight`. */
  outProj: Param;
  /** `att.out_proj.bias`. */
  outProjBias: Param;
  /** `norm2.scale` then `norm2.shift`. */
  norm2: Param;
  /** `ff.layers.0.weight`, `[4C, C]`. */
  fc: Param;
  /** `ff.layers.0.bias`. */
  fcBias: Param;
  /** `ff.layers.2.weight`, `[C, 4C]`. */
  fc2: Param;
  /** `ff.layers.2.bias`. */
  fc2Bias: Param;
}

/** Every parameter of a model, named as the book's `GPTModel`. */
export class TrainParams {
  /** The configuration. */
  readonly cfg: Required<GPTConfig>;
  /** `tok_emb.weight` in chunks. */
  readonly tokEmb: VocabParam[];
  /** `pos_emb.weight`. */
  readonly posEmb: Param;
  /** `trf_blocks`. */
  readonly blocks: BlockParams[];
  /** `final_norm.scale` then `.shift`. */
  readonly finalNorm: Param;
  /** `out_head.weight` in chunks (the token embedding's when tied). */
  readonly outHead: VocabParam[];
  /** True when the head is the token embedding. */
  readonly tied: boolean;
  #device: GPUDevice;

  /**
   * Allocates the parameters (zeros) and their gradients.
   *
   * @param device The device.
   * @param cfg The configuration.
   * @param options Vocabulary rows per chunk, and whether the head is tied to the embedding.
   */
  constructor(device: GPUDevice, cfg: Required<GPTConfig>, options: { chunkRows: number; tied: boolean }) {
    this.#device = device;
    this.cfg = cfg;
    this.tied = options.tied;
    const { emb_dim: C, vocab_size: V } = cfg;
    const make = (name: string, size: number): Param => ({
      name,
      size,
      buffer: this.#buffer(name, size),
      grad: this.#buffer(`${name} grad`, size),
    });
    const vocab = (name: string): VocabParam[] => {
      const out: VocabParam[] = [];
      for (let v0 = 0; v0 < V; v0 += options.chunkRows) {
        const rows = Math.min(options.chunkRows, V - v0);
        out.push({ ...make(`${name}[${v0}:${v0 + rows}]`, rows * C), v0, rows });
      }
      return out;
    };
    this.tokEmb = vocab("tok_emb.weight");
    this.posEmb = make("pos_emb.weight", cfg.context_length * C);
    this.blocks = Array.from({ length: cfg.n_layers }, (_, l) => {
      const p = `trf_blocks.${l}`;
      return {
        norm1: make(`${p}.norm1`, 2 * C),
        qkv: make(`${p}.att.qkv.weight`, 3 * C * C),
        qkvBias: cfg.qkv_bias ? make(`${p}.att.qkv.bias`, 3 * C) : undefined,
        outProj: make(`${p}.att.out_proj.weight`, C * C),
        outProjBias: make(`${p}.att.out_proj.bias`, C),
        norm2: make(`${p}.norm2`, 2 * C),
        fc: make(`${p}.ff.layers.0.weight`, 4 * C * C),
        fcBias: make(`${p}.ff.layers.0.bias`, 4 * C),
        fc2: make(`${p}.ff.layers.2.weight`, 4 * C * C),
        fc2Bias: make(`${p}.ff.layers.2.bias`, C),
      };
    });
    this.finalNorm = make("final_norm", 2 * C);
    this.outHead = options.tied ? this.tokEmb : vocab("out_head.weight");
  }

  #buffer(label: string, size: number): GPUBuffer {
    return this.#device.createBuffer({
      label,
      size: size * 4,
      usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST,
    });
  }

  /** Every tensor once, in the book's order (what AdamW updates). */
  get all(): Param[] {
    const out: Param[] = [...this.tokEmb, this.posEmb];
    for (const b of this.blocks) {
      out.push(b.qkv, ...(b.qkvBias ? [b.qkvBias] : []), b.outProj, b.outProjBias, b.fc, b.fcBias, b.fc2, b.fc2Bias);
      out.push(b.norm1, b.norm2);
    }
    out.push(this.finalNorm);
    if (!this.tied) out.push(...this.outHead);
    return out;
  }

  /** Bytes of GPU memory the parameters and gradients take. */
  get bytes(): number {
    return this.all.reduce((s, p) => s + p.size * 8, 0);
  }

  /**
   * Writes one of the book's tensors (as {@linkcode WeightBuilder} takes them: pieces of rows of the
   * vocabulary tables, `[in, out]` matrices marked `inputMajor`) into its parameter.
   *
   * @param t The tensor.
   */
  write(t: InputTensor): void {
    const { emb_dim: C } = this.cfg;
    const q = this.#device.queue;
    if (t.name === "tok_emb.weight" || t.name === "out_head.weight") {
      const chunks = t.name === "tok_emb.weight" ? this.tokEmb : this.outHead;
      if (this.tied && t.name === "out_head.weight") return;
      let row = t.row0 ?? 0;
      let off = 0;
      while (off < t.data.length) {
        const c = chunks.find((ch) => row >= ch.v0 && row < ch.v0 + ch.rows)!;
        const n = Math.min((c.v0 + c.rows - row) * C, t.data.length - off);
        q.writeBuffer(c.buffer, (row - c.v0) * C * 4, t.data as Float32Array<ArrayBuffer>, off, n);
        off += n;
        row += n / C;
      }
      return;
    }
    const [param, offset] = this.#target(t.name);
    const data = t.inputMajor ? transpose(t.data, t.shape[0], t.shape[1]) : t.data;
    q.writeBuffer(param.buffer, offset * 4, data as Float32Array<ArrayBuffer>);
  }

  /** The parameter a tensor goes into, and where in it (floats). */
  #target(name: string): [Param, number] {
    const C = this.cfg.emb_dim;
    if (name === "pos_emb.weight") return [this.posEmb, 0];
    const fn = /^final_norm\.(scale|shift)$/.exec(name);
    if (fn) return [this.finalNorm, fn[1] === "scale" ? 0 : C];
    const m = /^trf_blocks\.(\d+)\.(.+)$/.exec(name);
    const b = m ? this.blocks[Number(m[1])] : undefined;
    if (!m || !b) throw new RangeError(`Cannot train tensor '${name}': it is not a parameter of this model`);
    const rest = m[2];
    const qkv = /^att\.W_(query|key|value)\.(weight|bias)$/.exec(rest);
    if (qkv) {
      const i = ["query", "key", "value"].indexOf(qkv[1]);
      return qkv[2] === "weight" ? [b.qkv, i * C * C] : [b.qkvBias!, i * C];
    }
    const norm = /^(norm1|norm2)\.(scale|shift)$/.exec(rest);
    if (norm) return [b[norm[1] as "norm1" | "norm2"], norm[2] === "scale" ? 0 : C];
    const simple: Record<string, Param | undefined> = {
      "att.qkv.weight": b.qkv,
      "att.qkv.bias": b.qkvBias,
      "att.out_proj.weight": b.outProj,
      "att.out_proj.bias": b.outProjBias,
      "ff.layers.0.weight": b.fc,
      "ff.layers.0.bias": b.fcBias,
      "ff.layers.2.weight": b.fc2,
      "ff.layers.2.bias": b.fc2Bias,
    };
    const p = simple[rest];
    if (!p) throw new RangeError(`Cannot train tensor '${name}': it is not a parameter of this model`);
    return [p, 0];
  }

  /**
   * The book's `state_dict` tensors: name, shape, and where their values are (a parameter and a
   * float offset; the vocabulary tables as their chunks in order).
   *
   * @returns The tensors, in the order `GPTModel.state_dict()` lists them.
   */
  stateDict(): { name: string; shape: number[]; parts: { param: Param; offset: number; size: number }[] }[] {
    const { emb_dim: C, vocab_size: V, context_length: T } = this.cfg;
    const whole = (p: Param, offset = 0, size = p.size) => [{ param: p, offset, size }];
    const out = [
      { name: "tok_emb.weight", shape: [V, C], parts: this.tokEmb.map((p) => whole(p)[0]) },
      { name: "pos_emb.weight", shape: [T, C], parts: whole(this.posEmb) },
    ];
    this.blocks.forEach((b, l) => {
      const p = `trf_blocks.${l}`;
      ["query", "key", "value"].forEach((n, i) => {
        out.push({ name: `${p}.att.W_${n}.weight`, shape: [C, C], parts: whole(b.qkv, i * C * C, C * C) });
        if (b.qkvBias) out.push({ name: `${p}.att.W_${n}.bias`, shape: [C], parts: whole(b.qkvBias, i * C, C) });
      });
      out.push(
        { name: `${p}.att.out_proj.weight`, shape: [C, C], parts: whole(b.outProj) },
        { name: `${p}.att.out_proj.bias`, shape: [C], parts: whole(b.outProjBias) },
        { name: `${p}.ff.layers.0.weight`, shape: [4 * C, C], parts: whole(b.fc) },
        { name: `${p}.ff.layers.0.bias`, shape: [4 * C], parts: whole(b.fcBias) },
        { name: `${p}.ff.layers.2.weight`, shape: [C, 4 * C], parts: whole(b.fc2) },
        { name: `${p}.ff.layers.2.bias`, shape: [C], parts: whole(b.fc2Bias) },
        { name: `${p}.norm1.scale`, shape: [C], parts: whole(b.norm1, 0, C) },
        { name: `${p}.norm1.shift`, shape: [C], parts: whole(b.norm1, C, C) },
        { name: `${p}.norm2.scale`, shape: [C], parts: whole(b.norm2, 0, C) },
        { name: `${p}.norm2.shift`, shape: [C], parts: whole(b.norm2, C, C) },
      );
    });
    out.push(
      { name: "final_norm.scale", shape: [C], parts: whole(this.finalNorm, 0, C) },
      { name: "final_norm.shift", shape: [C], parts: whole(this.finalNorm, C, C) },
      { name: "out_head.weight", shape: [V, C], parts: this.outHead.map((p) => whole(p)[0]) },
    );
    return out;
  }

  /**
   * Encodes copies of the parameters into the inference weights (same values, the inference
   * layout), so that generation after a training step uses the new values.
   *
   * @param encoder The encoder.
   * @param w The inference weights (f32).
   * @param relayout Records one `[N, K]` matrix into the blocked layout; the caller's program.
   */
  copyInto(
    encoder: GPUCommandEncoder,
    w: ModelWeights,
    relayout: (src: GPUBuffer, dst: GPUBuffer, N: number, K: number) => void,
  ): void {
    const { emb_dim: C } = this.cfg;
    const copy = (src: GPUBuffer, dst: GPUBuffer, bytes: number, at = 0) =>
      encoder.copyBufferToBuffer(src, 0, dst, at, bytes);
    this.tokEmb.forEach((p, i) => relayout(p.buffer, w.tok_emb[i].buffer, p.rows, C));
    if (!this.tied) this.outHead.forEach((p, i) => relayout(p.buffer, w.out_head[i].buffer, p.rows, C));
    copy(this.posEmb.buffer, w.pos_emb, this.posEmb.size * 4);
    copy(this.finalNorm.buffer, w.final_norm, 2 * C * 4);
    this.blocks.forEach((b, l) => {
      const t = w.trf_blocks[l];
      relayout(b.qkv.buffer, t.att.qkv.buffer, 3 * C, C);
      relayout(b.outProj.buffer, t.att.out_proj.buffer, C, C);
      relayout(b.fc.buffer, t.ff.fc.buffer, 4 * C, C);
      relayout(b.fc2.buffer, t.ff.fc2.buffer, C, 4 * C);
      if (b.qkvBias) copy(b.qkvBias.buffer, t.att.qkv_bias, 3 * C * 4);
      copy(b.outProjBias.buffer, t.att.out_proj_bias, C * 4);
      copy(b.fcBias.buffer, t.ff.fc_bias, 4 * C * 4);
      copy(b.fc2Bias.buffer, t.ff.fc2_bias, C * 4);
      copy(b.norm1.buffer, t.norm1, 2 * C * 4);
      copy(b.norm2.buffer, t.norm2, 2 * C * 4);
    });
  }

  /** Frees the parameters and gradients. */
  destroy(): void {
    for (const p of this.all) {
      p.buffer.destroy();
      p.grad.destroy();
    }
  }
}

/** `[rows, cols]` into `[cols, rows]`. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}
