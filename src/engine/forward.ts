/**
 * The forward pass on the GPU, in the book's order and with its names: read it beside
 * `forwardRef` in `reference.ts`, which does the same in plain TypeScript.
 *
 * ```
 * x = tok_emb(idx) + pos_emb(pos)                 embedding
 * for each block:
 *   h = norm1(x)                                  layer_norm
 *   q|k|v = h W_qkv + b                           matmul qkv
 *   ctx = causal_attention(q, k, v)               attention (keys and values into the cache)
 *   x = x + ctx W_out + b                         matmul out_proj+residual
 *   h = norm2(x)                                  layer_norm
 *   f = GELU(h W_fc + b)                          matmul fc+gelu
 *   x = x + f W_fc2 + b                           matmul fc2+residual
 * logits = final_norm(x) W_out_head               layer_norm, matmul head
 * next = argmax(logits) | sample(logits)          one next-token stage (recordNextToken)
 * ```
 *
 * The weights carry the book's names (`tok_emb`, `pos_emb`, `trf_blocks[i].norm1`, `.att`, `.norm2`,
 * `.ff`, `final_norm`, `out_head`), and every op is given the buffers it reads and writes.
 *
 * Each step below is one op object (`_ops.ts`) that knows its kernel, bindings and dispatch size;
 * which kernel that is was decided by the backend profile (`backend.ts`). Where the profile puts a
 * LayerNorm inside the next product, the norm's op records nothing and the product reads `x`.
 *
 * @module
 */

import type { ModelWeights } from "../weights/model_weights.ts";
import type { Recorder } from "./_recorder.ts";
import type { Workspace } from "./_workspace.ts";
import type { Linear, Op, StepShape } from "./_ops.ts";
import type { OpFactory } from "./_op_factory.ts";

/** One transformer block's ops, named as in the book's `TransformerBlock`. */
export interface BlockOps {
  /** LayerNorm before the attention. */
  norm1: Op;
  /** Queries, keys and values in one product. */
  qkv: Op;
  /** Causal multi-head attention over the key/value cache. */
  attention: Op;
  /** The attention's output projection, added to the residual stream. */
  outProj: Op;
  /** LayerNorm before the feed-forward network. */
  norm2: Op;
  /** The feed-forward's first layer with GELU. */
  fc: Op;
  /** The feed-forward's second layer, added to the residual stream. */
  fc2: Op;
}

/** The whole model's ops on one workspace. */
export interface ForwardOps {
  /** Token and position embeddings. */
  embedding: Op;
  /** The transformer blocks. */
  blocks: BlockOps[];
  /** The final LayerNorm of each row's last token. */
  finalNorm: Op;
  /** The output head on each row's last token, one product per vocabulary chunk. */
  head: Linear[];
  /** The greedy choice, written into the token rows. */
  argmax: Op;
  /** The sampler, written into the token rows. */
  sample: Op;
  /** The final LayerNorm of every token (for the logits of every position). */
  finalNormAll: Op;
}

/**
 * Makes the model's ops on a workspace, in the book's order.
 *
 * @param make The op factory of the workspace.
 * @param w The weights.
 * @param ws The workspace.
 * @param vp The padded vocabulary (row stride of the logits).
 * @returns The ops.
 */
export function buildForward(make: OpFactory, w: ModelWeights, ws: Workspace, vp: number): ForwardOps {
  // the activations, named as in the book: the residual stream x, a norm's output x_norm, the
  // attention's context_vec and the feed-forward's hidden layer
  const x = { buffer: ws.x };
  const context_vec = { buffer: ws.context_vec };
  const ff_hidden = { buffer: ws.ff_hidden };
  const blocks = w.trf_blocks.map((b, l): BlockOps => {
    const norm1 = make.layerNorm("norm1", ws.x, b.norm1, ws.x_norm, { fusable: true });
    const qkv = make.linear("matmul qkv", norm1.output, b.att.qkv, { bias: b.att.qkv_bias }, { buffer: ws.qkv });
    const attention = make.attention(ws.qkv, ws.kCache[l], ws.vCache[l], ws.context_vec);
    const outProj = make.linear("matmul out_proj+residual", context_vec, b.att.out_proj, {
      bias: b.att.out_proj_bias,
      residual: true,
    }, x);
    const norm2 = make.layerNorm("norm2", ws.x, b.norm2, ws.x_norm, { fusable: true });
    const fc = make.linear("matmul fc+gelu", norm2.output, b.ff.fc, { bias: b.ff.fc_bias, gelu: true }, ff_hidden);
    const fc2 = make.linear("matmul fc2+residual", ff_hidden, b.ff.fc2, { bias: b.ff.fc2_bias, residual: true }, x);
    return { norm1, qkv, attention, outProj, norm2, fc, fc2 };
  });
  const finalNorm = make.layerNorm("final_norm", ws.x, w.final_norm, ws.last, { lastOnly: true });
  return {
    embedding: make.embedding(w.tok_emb, w.pos_emb, ws.tokens, ws.x),
    blocks,
    finalNorm,
    head: w.out_head.map((c) =>
      make.linear("matmul head", finalNorm.output, c, {}, {
        buffer: ws.logits,
        rows: "batch",
        ldy: vp,
        offset: c.v0,
      })
    ),
    argmax: make.argmax(ws.logits, ws.tokens),
    sample: make.sample(ws.logits, ws.tokens),
    finalNormAll: make.layerNorm("final_norm", ws.x, w.final_norm, ws.x_norm),
  };
}

/**
 * Records the embedding and every transformer block for a step: the residual stream `x` of every
 * token of the step, its keys and values in the cache.
 *
 * @param rec Where dispatches go.
 * @param f The model's ops.
 * @param s The step's shape.
 * @param range Only blocks `from` to `to` (the embedding with block 0): a step recorded in parts.
 */
export function recordBlocks(
  rec: Recorder,
  f: ForwardOps,
  s: StepShape,
  range: { from: number; to: number } = { from: 0, to: f.blocks.length },
): void {
  if (range.from === 0) f.embedding.record(rec, s);
  for (const b of f.blocks.slice(range.from, range.to)) {
    b.norm1.record(rec, s);
    b.qkv.record(rec, s);
    b.attention.record(rec, s);
    b.outProj.record(rec, s);
    b.norm2.record(rec, s);
    b.fc.record(rec, s);
    b.fc2.record(rec, s);
  }
}

/** How a step chooses each row's next token: the one next-token stage, whatever the call. */
export interface NextToken {
  /** The greedy choice through the screened head (it records the head itself); else the full head. */
  screen?: (rec: Recorder, s: StepShape) => void;
  /** Take the argmax (in a ragged step, for every row; the sampler then overwrites the rows that sample). */
  argmax: boolean;
  /** Sample. */
  sample: boolean;
  /** The chosen tokens' log-probabilities and the top alternatives, after the choice. */
  logprobs?: Op;
}

/**
 * Records the choice of each row's next token after the blocks: the final norm of its last token,
 * the head (screened or whole), then the argmax and/or the sampler, then the log-probabilities.
 *
 * @param rec Where dispatches go.
 * @param f The model's ops.
 * @param s The step's shape.
 * @param next How the step chooses.
 */
export function recordNextToken(rec: Recorder, f: ForwardOps, s: StepShape, next: NextToken): void {
  f.finalNorm.record(rec, s);
  if (next.screen) next.screen(rec, s);
  else {
    for (const chunk of f.head) chunk.record(rec, s);
    if (next.argmax) f.argmax.record(rec, s);
    if (next.sample) f.sample.record(rec, s);
  }
  next.logprobs?.record(rec, s);
}

/**
 * Records one step: the blocks (those of `range`, when a step is recorded in parts) and, with the
 * last block, the next token's choice.
 *
 * @param rec Where dispatches go.
 * @param f The model's ops.
 * @param s The step's shape.
 * @param next How the step chooses.
 * @param range Only blocks `from` to `to`.
 */
export function recordStep(
  rec: Recorder,
  f: ForwardOps,
  s: StepShape,
  next: NextToken,
  range: { from: number; to: number } = { from: 0, to: f.blocks.length },
): void {
  recordBlocks(rec, f, s, range);
  if (range.to === f.blocks.length) recordNextToken(rec, f, s, next);
}

/**
 * The output head over every position (`logits = self.out_head(x)` for all tokens, as `model(idx)`
 * returns them), for the final norm of every token in `h`: one product per vocabulary chunk and
 * group of `groupRows` rows, so that each output binding fits the adapter's limit.
 *
 * @param make The op factory.
 * @param w The weights.
 * @param h The normalised rows.
 * @param out Where the logits go, their row stride, and the rows and rows per group.
 * @returns The products, in order.
 */
export function buildOutHeadAll(
  make: OpFactory,
  w: ModelWeights,
  h: GPUBuffer,
  out: { logits: GPUBuffer; vp: number; rows: number; groupRows: number },
): Linear[] {
  const ops: Linear[] = [];
  for (let r0 = 0; r0 < out.rows; r0 += out.groupRows) {
    const n = Math.min(out.groupRows, out.rows - r0);
    const y = {
      buffer: out.logits,
      rows: n,
      ldy: out.vp,
      xRow0: r0,
      range: { offset: r0 * out.vp * 4, size: n * out.vp * 4 },
    };
    for (const c of w.out_head) ops.push(make.linear("matmul head", { buffer: h }, c, {}, { ...y, offset: c.v0 }));
  }
  return ops;
}

/**
 * Records the logits of every position: the blocks, the final norm of every token, and the head.
 *
 * @param rec Where dispatches go.
 * @param f The model's ops.
 * @param s The step's shape.
 * @param outHead The head over every position ({@linkcode buildOutHeadAll}).
 */
export function recordAllLogits(rec: Recorder, f: ForwardOps, s: StepShape, outHead: Linear[]): void {
  recordBlocks(rec, f, s);
  f.finalNormAll.record(rec, s);
  for (const op of outHead) op.record(rec, s);
}
