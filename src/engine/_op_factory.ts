/**
 * Makes the ops of one model on one workspace: their parameter buffers, bind groups and pipelines.
 *
 * @module
 */

import type { GPTConfig } from "../weights/config.ts";
import type { Kernels } from "./_kernels.ts";
import type { Workspace } from "./_workspace.ts";
import type { GpuMatrix, VocabChunk } from "../gpu/weights.ts";
import { type KernelSpec, layoutOf } from "../gpu/pipelines.ts";
import {
  Dispatch,
  Linear,
  type NormOp,
  type Op,
  type ProductEpilogue,
  type ProductInput,
  type ProductOutput,
  ROWS_MODE,
  Sequence,
} from "./_ops.ts";
import {
  ARGMAX_PARAMS,
  ARGMAX_PARTS,
  EMBEDDING_PARAMS,
  encodeParams,
  LAYER_NORM_PARAMS,
  LOGPROBS,
  LOGPROBS_PARAMS,
  MATMUL_PARAMS,
  MM_ADD,
  MM_BIAS,
  MM_GELU,
  MM_LN,
  MM_X_UNIFORM_VEC4S,
  SAMPLE,
} from "../../kernels/mod.ts";

/** An op with nothing to dispatch (a LayerNorm that the next product computes). */
const NOTHING = (name: string): Op => ({ name, record() {} });

/** Makes the ops of one model on one workspace: params, bind groups and pipelines. */
export class OpFactory {
  #device: GPUDevice;
  #kernels: Kernels;
  #ws: Workspace;
  #cfg: Required<GPTConfig>;
  #vp: number;
  #uniform: (label: string, words: Uint32Array<ArrayBuffer>) => GPUBuffer;

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
    uniform?: (label: string, words: Uint32Array<ArrayBuffer>) => GPUBuffer,
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
      // a binding has a `buffer`; a buffer has none (and no `GPUBuffer` global to test against in Node)
      entries: res.map((r, binding) => ({ binding, resource: "buffer" in r ? r : { buffer: r } })),
    });
  }

  /**
   * Token and position embeddings, added: `x = tok_emb(idx) + pos_emb(pos)` for every token of the step.
   *
   * @param tok The token embedding's vocabulary chunks.
   * @param pos The position embedding.
   * @param idx The token rows the step reads its tokens from.
   * @param x Where the sums go: the residual stream.
   * @returns The op.
   */
  embedding(tok: VocabChunk[], pos: GPUBuffer, idx: GPUBuffer, x: GPUBuffer): Op {
    const C = this.#cfg.emb_dim;
    const spec = this.#kernels.embedding;
    const groups = tok.map((c) =>
      this.#bind(spec, "embedding", [
        this.#uniform("embed.params", encodeParams(EMBEDDING_PARAMS, { C, v0: c.v0, vn: c.N })),
        this.#ws.step,
        idx,
        c.buffer,
        pos,
        x,
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
      this.#uniform(`${name}.params`, encodeParams(LAYER_NORM_PARAMS, { C, last_only: last, eps })),
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
    const params = this.#uniform(
      `${name}.params`,
      encodeParams(MATMUL_PARAMS, {
        M,
        K,
        N,
        ldy: y.ldy ?? N,
        y_off: y.offset ?? 0,
        m_mode: mMode,
        flags,
        x_row0: y.xRow0 ?? 0,
        eps: this.#cfg.layer_norm_epsilon,
      }),
    );
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
   * Causal multi-head attention over one block's cache (llm.c's `attention_forward(out, ..., inp)`):
   * stores the step's keys and values at their positions, then each query attends to every
   * position up to its own.
   *
   * @param qkv The step's queries, keys and values.
   * @param kCache The block's key cache.
   * @param vCache The block's value cache.
   * @param ctx Where the context vectors go.
   * @returns The op.
   */
  attention(qkv: GPUBuffer, kCache: GPUBuffer, vCache: GPUBuffer, ctx: GPUBuffer): Op {
    const spec = this.#kernels.attention;
    const H = this.#cfg.n_heads;
    const group = this.#bind(spec, "attention", [
      this.#ws.attnParams,
      this.#ws.step,
      qkv,
      kCache,
      vCache,
      ctx,
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
   * @param logits The head's logits, `[B, vp]`.
   * @param tokens The token rows the choice is written into.
   * @returns The op.
   */
  argmax(logits: GPUBuffer, tokens: GPUBuffer): Op {
    const V = this.#cfg.vocab_size;
    const params = this.#uniform(
      "argmax.params",
      encodeParams(ARGMAX_PARAMS, { V, ldl: this.#vp, G: ARGMAX_PARTS, chunk: Math.ceil(V / ARGMAX_PARTS) }),
    );
    const [first, final] = this.#kernels.argmax;
    const pipe = (spec: KernelSpec) => this.#kernels.pipeline(spec);
    const step = this.#ws.step;
    if (!final) {
      return new Dispatch("argmax", pipe(first), [this.#bind(first, "argmax", [params, step, logits, tokens])], (s) => [
        s.B,
      ]);
    }
    // the split argmax: the best of each part, then the best of the parts
    const parts = this.#ws.parts!;
    return new Sequence("argmax", [
      new Dispatch("argmax", pipe(first), [this.#bind(first, "argmax", [params, step, logits, parts])], (s) => [
        ARGMAX_PARTS,
        s.B,
      ]),
      new Dispatch("argmax", pipe(final), [this.#bind(final, "argmax_final", [params, step, parts, tokens])], (s) => [
        s.B,
      ]),
    ]);
  }

  /**
   * Sampling: top-k, temperature, softmax, top-p and a seeded draw for each batch row.
   *
   * @param logits The head's logits, `[B, vp]`.
   * @param tokens The token rows the draw is written into.
   * @returns The op (compile the sampler before recording it).
   */
  sample(logits: GPUBuffer, tokens: GPUBuffer): Op {
    const group = this.#bind(SAMPLE, "sample", [this.#ws.sampleParams, this.#ws.step, logits, tokens]);
    return {
      name: "sample",
      record: (rec, s) => rec.dispatch("sample", this.#kernels.pipeline(SAMPLE), group, s.B),
    };
  }

  /**
   * The log-probabilities of each row's chosen token and its top alternatives (ragged steps),
   * into `out` at the step's `index` (compile `LOGPROBS` before recording it).
   *
   * @param logits The head's logits, `[B, vp]`.
   * @param tokens The token rows holding the choices.
   * @param out Where they go: `LOGPROB_WORDS` words per (step of a run, ragged row).
   * @returns The op.
   */
  logprobs(logits: GPUBuffer, tokens: GPUBuffer, out: GPUBuffer): Op {
    const params = this.#uniform(
      "logprobs.params",
      encodeParams(LOGPROBS_PARAMS, { V: this.#cfg.vocab_size, ldl: this.#vp }),
    );
    const group = this.#bind(LOGPROBS, "logprobs", [params, this.#ws.step, logits, tokens, out]);
    return {
      name: "logprobs",
      record: (rec, s) => rec.dispatch("logprobs", this.#kernels.pipeline(LOGPROBS), group, s.B),
    };
  }
}
