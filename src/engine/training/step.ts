/**
 * A training step on the GPU in the book's order and names (llm.c's `gpt2_forward` and
 * `gpt2_backward`): read it beside `forward.ts`, which runs the same model for generation.
 *
 * ```
 * x = drop(tok_emb(idx) + pos_emb(pos))           embed_fwd (per vocabulary chunk), dropout
 * for each block:
 *   h = norm1(x)                                  ln_fwd (keeps mean, sd)
 *   q|k|v = h W_qkv^T + b                         mm_nt
 *   ctx = causal_attention(q, k, v)               att_fwd (keeps the weights; drops them)
 *   x = x + drop(ctx W_out^T + b)                 copy, mm_nt (accumulating; dropout, add)
 *   h = norm2(x)                                  ln_fwd
 *   f = GELU(h W_fc^T + b)                        mm_nt, gelu_fwd (keeps both)
 *   x = x + drop(f W_fc2^T + b)                   copy, mm_nt (accumulating; dropout, add)
 * logits = final_norm(x) W_out_head^T             ln_fwd, mm_nt per row block and chunk
 * loss = cross_entropy(logits, targets)           ce (the logits' gradient in place)
 * ```
 *
 * then the same backwards, each op's gradient added where its input came from; weight gradients
 * accumulate (`+=`) until the optimizer's `zeroGrad`. Dropout (`drop_rate > 0`, training programs
 * only) draws its masks from a hash of a per-step seed and each element's index, so backward
 * redraws the forward's mask instead of storing it.
 *
 * @module
 */

import type { GPTConfig } from "../../weights/config.ts";
import type { Activations } from "./_activations.ts";
import type { DropoutSites, TrainOps } from "./_ops.ts";
import type { Field } from "./_program.ts";
import type { TrainParams } from "./params.ts";

/** What a step's recording needs: the configuration, parameters, activations and batch rows. */
export interface StepParts {
  cfg: Required<GPTConfig>;
  params: TrainParams;
  act: Activations;
  /** Batch rows of this program (at most the activations'). */
  batch: number;
  /** Dropout's sites, in a training program of a model with `drop_rate > 0`. */
  dropout?: DropoutSites;
}

/** The masks' keys: the embedding's, then per block the attention weights', and the two shortcuts'. */
const EMB = 0;
const key = (l: number, site: "weights" | "att" | "ff") => 1 + 3 * l + ["weights", "att", "ff"].indexOf(site);

/** The attention kernels' params, with the dropout of their weights tracked for a new seed each step. */
function attentionParams(s: StepParts, l: number, track: (slot: number, params: Field[]) => void) {
  const { emb_dim: C, n_heads: H } = s.cfg;
  const hd = C / H;
  const params = (): Field[] => [s.batch, s.act.T, H, hd, C, 0, { f: s.dropout?.rate ?? 0 }, { f: Math.sqrt(hd) }];
  return {
    params,
    tracked: (slot: number, p: Field[]) => {
      if (s.dropout) s.dropout.track(slot, p, 5, key(l, "weights"));
      track(slot, p);
    },
  };
}

/**
 * Records `y = x + drop(f)` where `linear` records `f` into `y` (accumulating) or, with dropout,
 * into a scratch buffer first.
 */
function residual(
  ops: TrainOps,
  s: StepParts,
  x: GPUBuffer,
  y: GPUBuffer,
  linear: (out: GPUBuffer, acc: boolean) => void,
  mask: number,
): void {
  const n = s.batch * s.act.T * s.cfg.emb_dim;
  ops.copy(x, y, n);
  if (!s.dropout) return linear(y, true);
  linear(s.act.tmp, false);
  ops.dropout(s.act.tmp, n, s.dropout, mask);
  ops.add(s.act.tmp, y, n);
}

/** The gradient of `f` in `y = x + drop(f)`: `dy` itself, or with dropout its masked copy. */
function residualGrad(ops: TrainOps, s: StepParts, dy: GPUBuffer, mask: number): GPUBuffer {
  if (!s.dropout) return dy;
  const n = s.batch * s.act.T * s.cfg.emb_dim;
  ops.copy(dy, s.act.dtmp, n);
  ops.dropout(s.act.dtmp, n, s.dropout, mask);
  return s.act.dtmp;
}

const groups = (n: number, per: number) => Math.max(1, Math.ceil(n / per));

/**
 * Records the forward pass up to `final_norm(x)`, keeping what backward needs.
 *
 * @param ops The recorder.
 * @param s The step's parts.
 */
export function recordForward(ops: TrainOps, s: StepParts): void {
  const { emb_dim: C, n_heads: H } = s.cfg;
  const { params: P, act: A } = s;
  const B = s.batch, T = A.T, rows = B * T;
  const ln = { rows, C, eps: s.cfg.layer_norm_epsilon };
  // x = drop_emb(tok_emb(idx) + pos_emb(pos))
  for (const chunk of P.tokEmb) {
    ops.prog.add("embed_fwd", [rows, T, C, chunk.v0, chunk.rows], [
      A.ids,
      chunk.buffer,
      P.posEmb.buffer,
      A.res[0],
    ], [groups(C, 64), rows]);
  }
  if (s.dropout) ops.dropout(A.res[0], rows * C, s.dropout, EMB);
  P.blocks.forEach((b, l) => {
    const a = A.blocks[l];
    const x = A.res[l];
    // h = norm1(x); q|k|v = h W_qkv^T + b
    ops.layerNorm(x, b.norm1, a.ln1, a.stats1, ln);
    ops.linear(a.ln1, { weight: b.qkv, bias: b.qkvBias }, a.qkv, { rows, N: 3 * C, K: C });
    // context_vec = causal_attention(q, k, v), its weights dropped
    const att = attentionParams(s, l, () => {});
    const p = att.params();
    att.tracked(ops.prog.add("att_fwd", p, [a.qkv, a.att, a.atty], [groups(T, 64), B * H]), p);
    // x = x + drop_shortcut(context_vec W_out^T + b)
    residual(
      ops,
      s,
      x,
      a.res2,
      (out, acc) => ops.linear(a.atty, { weight: b.outProj, bias: b.outProjBias }, out, { rows, N: C, K: C, acc }),
      key(l, "att"),
    );
    // h = norm2(x); f = GELU(h W_fc^T + b)
    ops.layerNorm(a.res2, b.norm2, a.ln2, a.stats2, ln);
    ops.linear(a.ln2, { weight: b.fc, bias: b.fcBias }, a.fch, { rows, N: 4 * C, K: C });
    ops.prog.addFlat("gelu_fwd", [rows * 4 * C], [a.fch, a.fchGelu]);
    // x = x + drop_shortcut(f W_fc2^T + b)
    residual(
      ops,
      s,
      a.res2,
      A.res[l + 1],
      (out, acc) => ops.linear(a.fchGelu, { weight: b.fc2, bias: b.fc2Bias }, out, { rows, N: C, K: 4 * C, acc }),
      key(l, "ff"),
    );
  });
  // final_norm(x)
  ops.layerNorm(A.res[s.cfg.n_layers], P.finalNorm, A.lnf, A.statsf, ln);
}

/**
 * Records the head and the loss in blocks of rows; with `backward`, also the head's backward:
 * the logits' gradient (`(softmax - onehot) / rows`, fused into the loss), `dW_head += dlogits^T h`
 * and `dh = dlogits W_head` (into `act.dln`).
 *
 * @param ops The recorder.
 * @param s The step's parts.
 * @param backward Whether to record the gradients.
 */
export function recordLoss(ops: TrainOps, s: StepParts, backward: boolean): void {
  const { emb_dim: C, vocab_size: V } = s.cfg;
  const { params: P, act: A } = s;
  const rows = s.batch * A.T;
  const vp = A.vp;
  for (let r0 = 0; r0 < rows; r0 += A.logitRows) {
    const n = Math.min(A.logitRows, rows - r0);
    const h = { buffer: A.lnf, ld: C, at: r0 * C };
    // logits = final_norm(x) W_out_head^T
    for (const chunk of P.outHead) {
      ops.mmNT(h, { buffer: chunk.buffer, ld: C }, { buffer: A.logits, ld: vp, at: chunk.v0 }, {
        M: n,
        N: chunk.rows,
        K: C,
      });
    }
    // loss = cross_entropy(logits, targets)
    ops.prog.add("ce", [V, vp, n, r0, backward ? 1 : 0, 0, 0, { f: 1 / rows }], [A.targets, A.logits, A.losses], [n]);
    if (!backward) continue;
    P.outHead.forEach((chunk, i) => {
      const dlogits = { buffer: A.logits, ld: vp, at: chunk.v0 };
      ops.mmTN(dlogits, h, { buffer: chunk.grad, ld: C }, { M: chunk.rows, N: C, K: n });
      ops.mmNN(dlogits, { buffer: chunk.buffer, ld: C }, { buffer: A.dln, ld: C, at: r0 * C }, {
        M: n,
        N: C,
        K: chunk.rows,
        acc: i > 0,
      });
    });
  }
}

/**
 * Records the backward pass from the final norm's output gradient (`act.dln`) to the embeddings.
 *
 * @param ops The recorder.
 * @param s The step's parts.
 * @returns The slots of the token embedding's gradient dispatches (their distinct-id counts change per batch).
 */
export function recordBackward(ops: TrainOps, s: StepParts): number[] {
  const { emb_dim: C, n_heads: H, n_layers: L } = s.cfg;
  const { params: P, act: A } = s;
  const B = s.batch, T = A.T, rows = B * T, hd = C / H;
  const shape = { rows, C };
  // final_norm
  ops.zero(A.dres, rows * C);
  ops.layerNormBackward(A.res[L], P.finalNorm, A.statsf, A.dln, A.dres, shape);
  for (let l = L - 1; l >= 0; l--) {
    const b = P.blocks[l];
    const a = A.blocks[l];
    // x = x + drop_shortcut(f W_fc2^T + b);  f = GELU(h W_fc^T + b);  h = norm2(x)
    const dff = residualGrad(ops, s, A.dres, key(l, "ff"));
    ops.linearBackward(dff, a.fchGelu, { weight: b.fc2, bias: b.fc2Bias }, A.dfch, { rows, N: C, K: 4 * C });
    ops.prog.addFlat("gelu_bwd", [rows * 4 * C], [a.fch, A.dfch]);
    ops.linearBackward(A.dfch, a.ln2, { weight: b.fc, bias: b.fcBias }, A.dln, { rows, N: 4 * C, K: C });
    ops.layerNormBackward(a.res2, b.norm2, a.stats2, A.dln, A.dres, shape);
    // x = x + drop_shortcut(context_vec W_out^T + b)
    const datt = residualGrad(ops, s, A.dres, key(l, "att"));
    ops.linearBackward(datt, a.atty, { weight: b.outProj, bias: b.outProjBias }, A.datty, { rows, N: C, K: C });
    // context_vec = causal_attention(q, k, v)
    const att = attentionParams(s, l, () => {});
    const p1 = att.params(), p2 = att.params();
    att.tracked(ops.prog.add("att_bwd_scores", p1, [a.qkv, a.att, A.datty, A.ds], [groups(T, 64), B * H]), p1);
    att.tracked(
      ops.prog.add("att_bwd_qkv", p2, [a.qkv, a.att, A.datty, A.ds, A.dqkv], [groups(hd, 16), T, B * H]),
      p2,
    );
    // q|k|v = h W_qkv^T + b;  h = norm1(x)
    ops.linearBackward(A.dqkv, a.ln1, { weight: b.qkv, bias: b.qkvBias }, A.dln, { rows, N: 3 * C, K: C });
    ops.layerNormBackward(A.res[l], b.norm1, a.stats1, A.dln, A.dres, shape);
  }
  // x = drop_emb(tok_emb(idx) + pos_emb(pos))
  if (s.dropout) ops.dropout(A.dres, rows * C, s.dropout, EMB);
  ops.prog.add("pos_bwd", [B, T, C], [A.dres, P.posEmb.grad], [groups(C, 64), T]);
  return P.tokEmb.map((chunk, i) =>
    ops.prog.add("embed_bwd", [C, 0, chunk.v0], [A.csr[i].uniq, A.csr[i].start, A.csr[i].pos, A.dres, chunk.grad], [
      groups(C, 64),
      rows,
    ])
  );
}
