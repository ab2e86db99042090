/**
 * The WGSL kernels with the kinds of their bindings, as the model dispatches them.
 *
 * @module
 */
import { ARGMAX_FINAL_WGSL, ARGMAX_PART_WGSL, ARGMAX_SERIAL_WGSL } from "./argmax.ts";
import { ATTENTION_BLOCK_WGSL, ATTENTION_SERIAL_WGSL, ATTENTION_WGSL } from "./attention.ts";
import { EMBEDDING_F16_WGSL, EMBEDDING_Q8_WGSL, EMBEDDING_WGSL } from "./embedding.ts";
import {
  HEAD_MARK_WGSL,
  HEAD_PICK_WGSL,
  HEAD_ROUTE_WGSL,
  HEAD_SCREEN_WGSL,
  headQuantWgsl,
  headRefineWgsl,
} from "./head_screen.ts";
import { LAYER_NORM_SERIAL_WGSL, LAYER_NORM_WGSL } from "./layer_norm.ts";
import {
  MATMUL_F16_WGSL,
  MATMUL_Q8_WGSL,
  MATMUL_WGSL,
  MATMUL_WIDE_F16_WGSL,
  MATMUL_WIDE_Q8_WGSL,
  MATMUL_WIDE_WGSL,
  MATMUL_WIDE_XU_F16_WGSL,
  MATMUL_WIDE_XU_Q8_WGSL,
  MATMUL_WIDE_XU_WGSL,
} from "./matmul.ts";
import { SAMPLE_WGSL } from "./sample.ts";
export { encodeSampleParams, type SampleParams } from "./sample.ts";
import { CROSS_ENTROPY_WGSL, KL_DIVERGENCE_WGSL } from "./loss.ts";
import { LOGPROBS_WGSL } from "./logprobs.ts";
import { MM_NN_WGSL, MM_NT_WGSL, MM_TN_WGSL } from "./matmul_tiled.ts";
import {
  ATT_BWD_QKV_WGSL,
  ATT_BWD_SCORES_WGSL,
  ATT_FWD_WGSL,
  CE_WGSL,
  COLSUM_WGSL,
  COPY_WGSL,
  DROPOUT_WGSL,
  EMBED_BWD_WGSL,
  EMBED_FWD_WGSL,
  GELU_BWD_WGSL,
  GELU_FWD_WGSL,
  LN_BWD_W_WGSL,
  LN_BWD_X_WGSL,
  LN_FWD_WGSL,
  POS_BWD_WGSL,
} from "./train.ts";
import { ADAMW_WGSL, CLIP_COEF_WGSL, RELAYOUT_WGSL, SCALE_WGSL, SUMSQ_WGSL } from "./optimizer.ts";
export { MMT_ACC, MMT_BIAS, MMT_TILE, MMT_TILE_ROWS } from "./matmul_tiled.ts";

/** How a kernel uses one binding. */
export type BindingKind = "uniform" | "read" | "write";

/** A kernel: its name, WGSL source and the kinds of its bindings, in order. */
export interface KernelSpec {
  /** A short name, used in labels and errors. */
  name: string;
  /** The WGSL source with a `main` entry point. */
  code: string;
  /** The bindings of group 0, in order. */
  bindings: BindingKind[];
}

export { ARGMAX_PARTS } from "./argmax.ts";
export {
  MM_ADD,
  MM_BIAS,
  MM_BLOCK,
  MM_GELU,
  MM_LN,
  MM_WIDE_COLS,
  MM_WIDE_ROWS,
  MM_X_UNIFORM_VEC4S,
  Q8_BLOCK,
} from "./matmul.ts";
export {
  encodeRow,
  encodeStep,
  MAX_RAGGED_ROWS,
  ROW_BYTES,
  ROW_FIELDS,
  STEP_BYTES,
  STEP_FIELDS,
  STEP_UNIFORM_BYTES,
  type StepHeader,
  type StepRow,
} from "./step.ts";
export { REFINE_INVOCATIONS, SCREEN_GROUP } from "./head_screen.ts";
export { LOGPROB_WORDS, TOP_LOGPROBS } from "./logprobs.ts";

/** Token + position embedding (f32 weights). */
export const EMBEDDING: KernelSpec = {
  name: "embedding",
  code: EMBEDDING_WGSL,
  bindings: ["uniform", "uniform", "read", "read", "read", "write"],
};
/** Token + position embedding (16-bit weights). */
export const EMBEDDING_F16: KernelSpec = { ...EMBEDDING, name: "embedding_f16", code: EMBEDDING_F16_WGSL };
/** Token + position embedding (8-bit weights). */
export const EMBEDDING_Q8: KernelSpec = { ...EMBEDDING, name: "embedding_q8", code: EMBEDDING_Q8_WGSL };
/** LayerNorm. */
export const LAYER_NORM: KernelSpec = {
  name: "layer_norm",
  code: LAYER_NORM_WGSL,
  bindings: ["uniform", "uniform", "read", "read", "write"],
};
/** LayerNorm without barriers, one invocation per row (CPU adapters). */
export const LAYER_NORM_SERIAL: KernelSpec = { ...LAYER_NORM, name: "layer_norm_serial", code: LAYER_NORM_SERIAL_WGSL };
/** Linear layer (f32 weights). */
export const MATMUL: KernelSpec = {
  name: "matmul",
  code: MATMUL_WGSL,
  bindings: ["uniform", "uniform", "read", "read", "read", "write", "read"],
};
/** Linear layer (16-bit weights). */
export const MATMUL_F16: KernelSpec = { ...MATMUL, name: "matmul_f16", code: MATMUL_F16_WGSL };
/** Linear layer (8-bit weights). */
export const MATMUL_Q8: KernelSpec = { ...MATMUL, name: "matmul_q8", code: MATMUL_Q8_WGSL };
/** Linear layer for CPU adapters (f32 weights; wide per-invocation tiles, no LayerNorm). */
export const MATMUL_WIDE: KernelSpec = { ...MATMUL, name: "matmul_wide", code: MATMUL_WIDE_WGSL };
/** Linear layer for CPU adapters (16-bit weights). */
export const MATMUL_WIDE_F16: KernelSpec = { ...MATMUL, name: "matmul_wide_f16", code: MATMUL_WIDE_F16_WGSL };
/** Linear layer for CPU adapters (8-bit weights). */
export const MATMUL_WIDE_Q8: KernelSpec = { ...MATMUL, name: "matmul_wide_q8", code: MATMUL_WIDE_Q8_WGSL };
/** Linear layer for CPU adapters with `x` from a uniform buffer (f32 weights; rows that fit one binding). */
export const MATMUL_WIDE_XU: KernelSpec = {
  name: "matmul_wide_xu",
  code: MATMUL_WIDE_XU_WGSL,
  bindings: ["uniform", "uniform", "uniform", "read", "read", "write", "read"],
};
/** Linear layer for CPU adapters with `x` from a uniform buffer (16-bit weights; rows that fit one binding). */
export const MATMUL_WIDE_XU_F16: KernelSpec = {
  ...MATMUL_WIDE_XU,
  name: "matmul_wide_xu_f16",
  code: MATMUL_WIDE_XU_F16_WGSL,
};
/** Linear layer for CPU adapters with `x` from a uniform buffer (8-bit weights). */
export const MATMUL_WIDE_XU_Q8: KernelSpec = {
  ...MATMUL_WIDE_XU,
  name: "matmul_wide_xu_q8",
  code: MATMUL_WIDE_XU_Q8_WGSL,
};
/** Causal attention over the cache, storing the step's keys and values in it. */
export const ATTENTION: KernelSpec = {
  name: "attention",
  code: ATTENTION_WGSL,
  bindings: ["uniform", "uniform", "read", "write", "write", "write"],
};
/** Causal attention (and cache store) without barriers, one invocation per query and head (CPU adapters). */
export const ATTENTION_SERIAL: KernelSpec = { ...ATTENTION, name: "attention_serial", code: ATTENTION_SERIAL_WGSL };
/** Causal attention (and cache store) in key blocks with vec4 loads, for GPUs (head size a multiple of 4). */
export const ATTENTION_BLOCK: KernelSpec = { ...ATTENTION, name: "attention_block", code: ATTENTION_BLOCK_WGSL };
/** Greedy argmax without barriers into the token buffer, one invocation per batch row (CPU adapters). */
export const ARGMAX_SERIAL: KernelSpec = {
  name: "argmax_serial",
  code: ARGMAX_SERIAL_WGSL,
  bindings: ["uniform", "uniform", "read", "write"],
};
/** First pass of the split greedy argmax (GPUs): the best id of each part of the vocabulary. */
export const ARGMAX_PART: KernelSpec = { ...ARGMAX_SERIAL, name: "argmax_part", code: ARGMAX_PART_WGSL };
/** Second pass of the split greedy argmax: the best of the parts, into the token buffer. */
export const ARGMAX_FINAL: KernelSpec = { ...ARGMAX_SERIAL, name: "argmax_final", code: ARGMAX_FINAL_WGSL };
/** Top-k / top-p / temperature sampling into the token buffer. */
export const SAMPLE: KernelSpec = {
  name: "sample",
  code: SAMPLE_WGSL,
  bindings: ["uniform", "uniform", "read", "write"],
};
/** Log-probabilities of each row's chosen token and its top alternatives (ragged steps). */
export const LOGPROBS: KernelSpec = {
  name: "logprobs",
  code: LOGPROBS_WGSL,
  bindings: ["uniform", "uniform", "read", "read", "write"],
};
/** 8-bit copy of a head chunk for screening (f32 weights). */
export const HEAD_QUANT: KernelSpec = {
  name: "head_quant",
  code: headQuantWgsl(false),
  bindings: ["uniform", "read", "write", "write"],
};
/** 8-bit copy of a head chunk for screening (16-bit weights). */
export const HEAD_QUANT_F16: KernelSpec = { ...HEAD_QUANT, name: "head_quant_f16", code: headQuantWgsl(true) };
/** Estimated logits with error bounds, from the 8-bit copy. */
export const HEAD_SCREEN: KernelSpec = {
  name: "head_screen",
  code: HEAD_SCREEN_WGSL,
  bindings: ["uniform", "uniform", "read", "read", "read", "write", "write", "write"],
};
/** The list of candidates for the greedy choice. */
export const HEAD_MARK: KernelSpec = {
  name: "head_mark",
  code: HEAD_MARK_WGSL,
  bindings: ["uniform", "uniform", "read", "read", "read", "write", "write"],
};
/** Exact logits of the candidates (f32 weights). */
export const HEAD_REFINE: KernelSpec = {
  name: "head_refine",
  code: headRefineWgsl(false),
  bindings: ["uniform", "uniform", "read", "read", "read", "read", "write"],
};
/** Exact logits of the candidates (16-bit weights). */
export const HEAD_REFINE_F16: KernelSpec = { ...HEAD_REFINE, name: "head_refine_f16", code: headRefineWgsl(true) };
/** The best candidate into the token buffer. */
export const HEAD_PICK: KernelSpec = {
  name: "head_pick",
  code: HEAD_PICK_WGSL,
  bindings: ["uniform", "uniform", "read", "read", "write", "write", "write"],
};
/** The fallback to the full head when the screen leaves too many candidates. */
export const HEAD_ROUTE: KernelSpec = {
  name: "head_route",
  code: HEAD_ROUTE_WGSL,
  bindings: ["uniform", "uniform", "read", "write", "write", "write"],
};
/** Cross-entropy of each row's logits against its target id. */
export const CROSS_ENTROPY: KernelSpec = {
  name: "cross_entropy",
  code: CROSS_ENTROPY_WGSL,
  bindings: ["uniform", "read", "read", "write"],
};
/** KL divergence and argmax agreement of two models' logits, row by row. */
export const KL_DIVERGENCE: KernelSpec = {
  name: "kl_divergence",
  code: KL_DIVERGENCE_WGSL,
  bindings: ["uniform", "read", "read", "write"],
};

export { encodeParams, type ParamsLayout } from "./params.ts";
export { EMBEDDING_PARAMS } from "./embedding.ts";
export { LAYER_NORM_PARAMS } from "./layer_norm.ts";
export { MATMUL_PARAMS } from "./matmul.ts";
export { ATTENTION_PARAMS } from "./attention.ts";
export { ARGMAX_PARAMS } from "./argmax.ts";
export { LOGPROBS_PARAMS } from "./logprobs.ts";
export { LOSS_PARAMS } from "./loss.ts";
export { SAMPLE_PARAMS } from "./sample.ts";
export { HEAD_PARAMS } from "./head_screen.ts";

/** Training kernels: the matrix products and the backward of every op (see `train.ts`). */
function trainKernel(name: string, code: string, ...rest: BindingKind[]): KernelSpec {
  return { name, code, bindings: ["uniform", ...rest] };
}
/** `C = A B^T (+ bias)`, register-tiled. */
export const MM_NT: KernelSpec = trainKernel("mm_nt", MM_NT_WGSL, "read", "read", "read", "write");
/** `C = A B`, register-tiled. */
export const MM_NN: KernelSpec = trainKernel("mm_nn", MM_NN_WGSL, "read", "read", "read", "write");
/** `C = A^T B`, register-tiled. */
export const MM_TN: KernelSpec = trainKernel("mm_tn", MM_TN_WGSL, "read", "read", "read", "write");
/** Token + position embedding for one vocabulary chunk (training). */
export const EMBED_FWD: KernelSpec = trainKernel("embed_fwd", EMBED_FWD_WGSL, "read", "read", "read", "write");
/** The token embedding's gradient for one chunk. */
export const EMBED_BWD: KernelSpec = trainKernel("embed_bwd", EMBED_BWD_WGSL, "read", "read", "read", "read", "write");
/** The position embedding's gradient. */
export const POS_BWD: KernelSpec = trainKernel("pos_bwd", POS_BWD_WGSL, "read", "write");
/** LayerNorm keeping its statistics (training). */
export const LN_FWD: KernelSpec = trainKernel("ln_fwd", LN_FWD_WGSL, "read", "read", "write", "write");
/** LayerNorm's input gradient. */
export const LN_BWD_X: KernelSpec = trainKernel("ln_bwd_x", LN_BWD_X_WGSL, "read", "read", "read", "read", "write");
/** LayerNorm's parameter gradients. */
export const LN_BWD_W: KernelSpec = trainKernel("ln_bwd_w", LN_BWD_W_WGSL, "read", "read", "read", "write");
/** GELU (training). */
export const GELU_FWD: KernelSpec = trainKernel("gelu_fwd", GELU_FWD_WGSL, "read", "write");
/** GELU's backward. */
export const GELU_BWD: KernelSpec = trainKernel("gelu_bwd", GELU_BWD_WGSL, "read", "write");
/** Causal attention keeping its weights (training). */
export const ATT_FWD: KernelSpec = trainKernel("att_fwd", ATT_FWD_WGSL, "read", "write", "write");
/** Attention backward: the scores' gradient. */
export const ATT_BWD_SCORES: KernelSpec = trainKernel(
  "att_bwd_scores",
  ATT_BWD_SCORES_WGSL,
  "read",
  "read",
  "read",
  "write",
);
/** Attention backward: the queries', keys' and values' gradients. */
export const ATT_BWD_QKV: KernelSpec = trainKernel(
  "att_bwd_qkv",
  ATT_BWD_QKV_WGSL,
  "read",
  "read",
  "read",
  "read",
  "write",
);
/** Cross-entropy with the logits' gradient fused. */
export const CE: KernelSpec = trainKernel("ce", CE_WGSL, "read", "write", "write");
/** AdamW's update of one tensor. */
export const ADAMW: KernelSpec = trainKernel("adamw", ADAMW_WGSL, "read", "write", "write", "write");
/** Sums of squares in parts (gradient norms). */
export const SUMSQ: KernelSpec = trainKernel("sumsq", SUMSQ_WGSL, "read", "write");
/** The global norm and the clipping coefficient. */
export const CLIP_COEF: KernelSpec = trainKernel("clip_coef", CLIP_COEF_WGSL, "read", "read", "write");
/** Scales a tensor by the clipping coefficient. */
export const SCALE: KernelSpec = trainKernel("scale", SCALE_WGSL, "read", "write");
/** PyTorch's `[N, K]` layout into the inference layout. */
export const RELAYOUT: KernelSpec = trainKernel("relayout", RELAYOUT_WGSL, "read", "write");
/** Column sums into a bias gradient. */
export const COLSUM: KernelSpec = trainKernel("colsum", COLSUM_WGSL, "read", "write");
/** Copies or zeroes floats. */
export const COPY: KernelSpec = trainKernel("copy", COPY_WGSL, "read", "write");
/** Dropout in place (forward and backward). */
export const DROPOUT: KernelSpec = trainKernel("dropout", DROPOUT_WGSL, "write");
