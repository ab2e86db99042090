/**
 * Assembles a model's GPU weights from named tensors, one at a time, checking every name and
 * shape against the configuration.
 *
 * @module
 */

import type { GPTConfig } from "./config.ts";
import type { NamedTensor } from "./init.ts";
import {
  createMatrix,
  createVector,
  type GpuMatrix,
  MatrixWriter,
  type VocabChunk,
  type WeightDType,
} from "../gpu/weights.ts";
import { VocabWriter } from "../gpu/vocab.ts";

/** Thrown when a weights file does not fit the model: a missing, unknown or misshapen tensor. */
export class WeightsError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong, naming the tensor.
   */
  constructor(message: string) {
    super(message);
    this.name = "WeightsError";
  }
}

/** A tensor for {@linkcode WeightBuilder.add}: `inputMajor` marks a `[in, out]` (Conv1D) matrix. */
export interface InputTensor extends NamedTensor {
  /** True when a matrix is stored `[in, out]` rather than PyTorch's `[out, in]`. */
  inputMajor?: boolean;
  /**
   * For the token embedding and output head only: `data` holds rows `row0 ..` of the tensor of
   * `shape`; the rest follows in later pieces, in order.
   */
  row0?: number;
}

/** A block's weights as they arrive, before {@linkcode WeightBuilder.finish} names them as the book does. */
interface LayerWeights {
  ln1: GPUBuffer;
  ln2: GPUBuffer;
  qkv: GpuMatrix;
  qkvB: GPUBuffer;
  proj: GpuMatrix;
  projB: GPUBuffer;
  fc: GpuMatrix;
  fcB: GPUBuffer;
  fc2: GpuMatrix;
  fc2B: GPUBuffer;
}

/** One transformer block's weights, named as the book's `trf_blocks[i]` parameters. */
export interface BlockWeights {
  /** `norm1.scale` then `norm1.shift`. */
  norm1: GPUBuffer;
  /** The attention (`att`). */
  att: {
    /** `W_query`, `W_key` and `W_value` side by side: one product. */
    qkv: GpuMatrix;
    /** Their biases (zeros without `qkv_bias`). */
    qkv_bias: GPUBuffer;
    /** `out_proj.weight`. */
    out_proj: GpuMatrix;
    /** `out_proj.bias`. */
    out_proj_bias: GPUBuffer;
  };
  /** `norm2.scale` then `norm2.shift`. */
  norm2: GPUBuffer;
  /** The feed-forward network (`ff`). */
  ff: {
    /** `layers[0].weight`, before the GELU. */
    fc: GpuMatrix;
    /** `layers[0].bias`. */
    fc_bias: GPUBuffer;
    /** `layers[2].weight`. */
    fc2: GpuMatrix;
    /** `layers[2].bias`. */
    fc2_bias: GPUBuffer;
  };
}

/** All of a model's weights on the GPU, named as the book's `GPTModel` parameters. */
export interface ModelWeights {
  /** `tok_emb.weight`, in vocabulary chunks. */
  tok_emb: VocabChunk[];
  /** `pos_emb.weight`. */
  pos_emb: GPUBuffer;
  /** `trf_blocks`. */
  trf_blocks: BlockWeights[];
  /** `final_norm.scale` then `final_norm.shift`. */
  final_norm: GPUBuffer;
  /** `out_head.weight` (the token embedding's chunks when the head is tied to it). */
  out_head: VocabChunk[];
}

interface Pending {
  qkvParts3: (InputTensor | undefined)[];
  qkvParts: number;
  qkvB?: Float32Array;
  layer: Partial<LayerWeights>;
  norm1?: Float32Array;
  norm2?: Float32Array;
  normParts: Set<string>;
}

/**
 * Takes the book's `state_dict` tensors (`tok_emb.weight`, `trf_blocks.N.att.W_query.weight`, ...)
 * plus `trf_blocks.N.att.qkv.weight` / `.bias` for fused Conv1D projections, and uploads each
 * as it arrives. LayerNorm halves and the three projections are held until their layer has them all.
 */
export class WeightBuilder {
  #device: GPUDevice;
  #cfg: Required<GPTConfig>;
  #dtype: WeightDType;
  #chunkRows: number;
  #track: (b: GPUBuffer) => void;
  #seen = new Set<string>();
  #tok?: VocabWriter;
  #head?: VocabWriter;
  #pos?: GPUBuffer;
  #lnf = new Float32Array(0);
  #lnfParts = new Set<string>();
  #lnfBuf?: GPUBuffer;
  #pending: Pending[];
  #layers: (LayerWeights | undefined)[];

  /**
   * @param device The device.
   * @param cfg The model configuration.
   * @param dtype How matrices are stored.
   * @param chunkRows Vocabulary rows per chunk of the embedding and head.
   * @param track Receives every buffer created, so a failure can free them.
   */
  constructor(
    device: GPUDevice,
    cfg: Required<GPTConfig>,
    dtype: WeightDType,
    chunkRows: number,
    track: (b: GPUBuffer) => void,
  ) {
    this.#device = device;
    this.#cfg = cfg;
    this.#dtype = dtype;
    this.#chunkRows = chunkRows;
    this.#track = track;
    this.#pending = Array.from({ length: cfg.n_layers }, () => ({
      qkvParts: 0,
      qkvParts3: [],
      layer: {},
      normParts: new Set<string>(),
    }));
    this.#layers = new Array(cfg.n_layers).fill(undefined);
  }

  #expect(t: InputTensor, shape: number[]): void {
    const ok = t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]);
    if (!ok) {
      throw new WeightsError(
        `Tensor '${t.name}' has shape [${t.shape.join(", ")}], expected [${shape.join(", ")}] for this config`,
      );
    }
    const n = shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== n) {
      throw new WeightsError(`Tensor '${t.name}' has ${t.data.length} values, expected ${n}`);
    }
  }

  #matrix(label: string, t: InputTensor, K: number, N: number): GpuMatrix {
    this.#expect(t, t.inputMajor ? [K, N] : [N, K]);
    return createMatrix(this.#device, label, this.#dtype, K, N, t.data, Boolean(t.inputMajor), this.#track);
  }

  #vector(label: string, t: InputTensor, n: number): GPUBuffer {
    this.#expect(t, [n]);
    return createVector(this.#device, label, t.data, this.#track);
  }

  /**
   * Uploads one tensor (or holds it until its group is complete), then calls its `release` once
   * its values are no longer needed.
   *
   * @param t The tensor, under the book's name.
   * @throws {WeightsError} On an unknown name, a repeated name or a wrong shape.
   */
  add(t: InputTensor): void {
    if (!this.#add(t)) t.release?.();
  }

  /** Uploads `t`; returns true when it is held for later (the query, key and value weights). */
  #add(t: InputTensor): boolean {
    if (t.name === "tok_emb.weight" || t.name === "out_head.weight") {
      this.#addVocab(t);
      return false;
    }
    if (t.row0 !== undefined) throw new WeightsError(`Tensor '${t.name}' cannot arrive in pieces`);
    if (this.#seen.has(t.name)) throw new WeightsError(`Tensor '${t.name}' appears twice`);
    this.#seen.add(t.name);
    if (this.#addTop(t)) return false;
    return this.#addBlock(t);
  }

  /** Uploads rows of the token embedding or the output head. */
  #addVocab(t: InputTensor): void {
    const { emb_dim: C, vocab_size: V } = this.#cfg;
    const key = t.name === "tok_emb.weight" ? "tok" : "head";
    const row0 = t.row0 ?? 0;
    let w = key === "tok" ? this.#tok : this.#head;
    if (row0 === 0 && w) throw new WeightsError(`Tensor '${t.name}' appears twice`);
    if (t.shape.length !== 2 || t.shape[0] !== V || t.shape[1] !== C) this.#expect(t, [V, C]);
    if (t.data.length % C !== 0 || row0 + t.data.length / C > V) {
      throw new WeightsError(
        `Tensor '${t.name}' has ${t.data.length} values from row ${row0}, which do not fit [${V}, ${C}]`,
      );
    }
    if (!w) {
      w = new VocabWriter(this.#device, t.name.split(".")[0], this.#dtype, V, C, this.#chunkRows, this.#track);
      if (key === "tok") this.#tok = w;
      else this.#head = w;
    }
    w.rows(t.data, row0);
    this.#seen.add(t.name);
  }

  /** Uploads the position embedding or the final norm; false for any other tensor. */
  #addTop(t: InputTensor): boolean {
    const { emb_dim: C, context_length: ctx } = this.#cfg;
    if (t.name === "pos_emb.weight") {
      this.#expect(t, [ctx, C]);
      this.#pos = createVector(this.#device, "pos_emb", t.data, this.#track);
      return true;
    }
    const fn = /^final_norm\.(scale|shift)$/.exec(t.name);
    if (fn) {
      this.#expect(t, [C]);
      if (this.#lnf.length === 0) this.#lnf = new Float32Array(2 * C);
      this.#lnf.set(t.data, fn[1] === "scale" ? 0 : C);
      this.#lnfParts.add(fn[1]);
      if (this.#lnfParts.size === 2) this.#lnfBuf = createVector(this.#device, "final_norm", this.#lnf, this.#track);
      return true;
    }
    return false;
  }

  /** Uploads a tensor of a transformer block; true when it is held for later. */
  #addBlock(t: InputTensor): boolean {
    const { emb_dim: C, n_layers } = this.#cfg;
    const m = /^trf_blocks\.(\d+)\.(.+)$/.exec(t.name);
    const l = m ? Number(m[1]) : -1;
    if (!m || l >= n_layers) {
      throw new WeightsError(`Tensor '${t.name}' is not part of a model with ${n_layers} layers`);
    }
    const p = this.#pending[l];
    const lw = p.layer;
    const rest = m[2];
    const label = `layer${l}.${rest}`;
    const qkvPart = /^att\.W_(query|key|value)\.(weight|bias)$/.exec(rest);
    let held = false;
    if (qkvPart) {
      const col = { query: 0, key: C, value: 2 * C }[qkvPart[1] as "query" | "key" | "value"];
      if (qkvPart[2] === "weight") {
        this.#expect(t, [C, C]);
        if (lw.qkv) throw new WeightsError(`Tensor '${t.name}' appears with a fused query/key/value weight`);
        p.qkvParts3[col / C] = t;
        p.qkvParts++;
        held = true;
      } else {
        this.#expect(t, [C]);
        p.qkvB ??= new Float32Array(3 * C);
        p.qkvB.set(t.data, col);
      }
    } else if (rest === "att.qkv.weight") {
      this.#expect(t, t.inputMajor ? [C, 3 * C] : [3 * C, C]);
      if (p.qkvParts > 0) {
        throw new WeightsError(`Tensor '${t.name}' appears with separate query, key and value weights`);
      }
      lw.qkv = createMatrix(
        this.#device,
        `layer${l}.qkv`,
        this.#dtype,
        C,
        3 * C,
        t.data,
        Boolean(t.inputMajor),
        this.#track,
      );
      p.qkvParts = 3;
    } else if (rest === "att.qkv.bias") {
      this.#expect(t, [3 * C]);
      p.qkvB = t.data.slice();
    } else if (rest === "att.out_proj.weight") lw.proj = this.#matrix(label, t, C, C);
    else if (rest === "att.out_proj.bias") lw.projB = this.#vector(label, t, C);
    else if (rest === "ff.layers.0.weight") lw.fc = this.#matrix(label, t, C, 4 * C);
    else if (rest === "ff.layers.0.bias") lw.fcB = this.#vector(label, t, 4 * C);
    else if (rest === "ff.layers.2.weight") lw.fc2 = this.#matrix(label, t, 4 * C, C);
    else if (rest === "ff.layers.2.bias") lw.fc2B = this.#vector(label, t, C);
    else {
      const nm = /^(norm1|norm2)\.(scale|shift)$/.exec(rest);
      if (!nm) throw new WeightsError(`Tensor '${t.name}' is not a parameter of the model`);
      this.#expect(t, [C]);
      const key = nm[1] as "norm1" | "norm2";
      p[key] ??= new Float32Array(2 * C);
      p[key]!.set(t.data, nm[2] === "scale" ? 0 : C);
      p.normParts.add(`${nm[1]}.${nm[2]}`);
    }
    if (p.qkvParts === 3 && !lw.qkv) {
      // the three projections side by side, written in column order whatever order they came in
      const w = new MatrixWriter(this.#device, `layer${l}.qkv`, this.#dtype, C, 3 * C, this.#track);
      p.qkvParts3.forEach((part, i) => {
        if (part!.inputMajor) w.inputMajor(part!.data, C, i * C);
        else w.rows(part!.data, i * C);
      });
      lw.qkv = w.finish();
      for (const part of p.qkvParts3) if (part !== t) part!.release?.();
      p.qkvParts3 = [];
      held = false;
    }
    return held;
  }

  /**
   * Uploads what was held back and checks that every tensor arrived.
   *
   * @param tiedHead Use the token embedding as the output head when `out_head.weight` is absent.
   * @returns The weights.
   * @throws {WeightsError} Naming the first missing tensor.
   */
  finish(tiedHead: boolean): ModelWeights {
    const { emb_dim: C, qkv_bias } = this.#cfg;
    const missing = (name: string): never => {
      throw new WeightsError(`Tensor '${name}' is missing from the weights`);
    };
    const V = this.#cfg.vocab_size;
    if (!this.#tok || this.#tok.written < V) missing("tok_emb.weight");
    if (!this.#pos) missing("pos_emb.weight");
    if (this.#head && this.#head.written < V) missing("out_head.weight");
    if (!this.#head && !tiedHead) missing("out_head.weight");
    const blocks: BlockWeights[] = [];
    for (let l = 0; l < this.#cfg.n_layers; l++) {
      const p = this.#pending[l];
      const lw = p.layer;
      const b = `trf_blocks.${l}`;
      if (!lw.qkv) missing(`${b}.att.W_${["query", "key", "value"][Math.min(p.qkvParts, 2)]}.weight`);
      if (qkv_bias && !p.qkvB) missing(`${b}.att.W_query.bias`);
      lw.qkvB = createVector(this.#device, `layer${l}.qkv.bias`, p.qkvB ?? new Float32Array(3 * C), this.#track);
      if (!lw.proj) missing(`${b}.att.out_proj.weight`);
      if (!lw.projB) missing(`${b}.att.out_proj.bias`);
      if (!lw.fc) missing(`${b}.ff.layers.0.weight`);
      if (!lw.fcB) missing(`${b}.ff.layers.0.bias`);
      if (!lw.fc2) missing(`${b}.ff.layers.2.weight`);
      if (!lw.fc2B) missing(`${b}.ff.layers.2.bias`);
      for (const part of ["norm1.scale", "norm1.shift", "norm2.scale", "norm2.shift"]) {
        if (!p.normParts.has(part)) missing(`${b}.${part}`);
      }
      lw.ln1 = createVector(this.#device, `layer${l}.norm1`, p.norm1!, this.#track);
      lw.ln2 = createVector(this.#device, `layer${l}.norm2`, p.norm2!, this.#track);
      const w = lw as LayerWeights;
      blocks.push({
        norm1: w.ln1,
        att: { qkv: w.qkv, qkv_bias: w.qkvB, out_proj: w.proj, out_proj_bias: w.projB },
        norm2: w.ln2,
        ff: { fc: w.fc, fc_bias: w.fcB, fc2: w.fc2, fc2_bias: w.fc2B },
      });
    }
    if (!this.#lnfBuf) missing(`final_norm.${this.#lnfParts.has("scale") ? "shift" : "scale"}`);
    return {
      tok_emb: this.#tok!.chunks,
      pos_emb: this.#pos!,
      trf_blocks: blocks,
      final_norm: this.#lnfBuf!,
      out_head: (this.#head ?? this.#tok!).chunks,
    };
  }
}
