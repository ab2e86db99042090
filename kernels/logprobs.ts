import { MAX_RAGGED_ROWS, STEP_WGSL } from "./step.ts";
import type { ParamsLayout } from "./params.ts";

/** Most alternatives a token's log-probabilities list. */

export const TOP_LOGPROBS = 5;

/** 32-bit words the log-probability kernel writes per batch row and step. */
export const LOGPROB_WORDS = 16;

/**
 * The log-probabilities of each batch row's chosen token and of its `TOP_LOGPROBS` most likely
 * alternatives, after the argmax or the sampler wrote the choice. One workgroup of 256 per row:
 * the maximum and the sum of exponentials give log(sum exp(logits)) (the log-softmax's
 * normaliser), then five passes pick the largest logits in order (ties: the lower id first).
 * Only the logits and the normaliser come back; the log-probabilities are logit minus normaliser.
 *
 * binding 0 (uniform) p: vocabulary size, logits row stride; binding 1 (uniform) st: the step
 * (`st.index` is the step's number in its run); binding 2 (read) logits: [B, ldl]; binding 3 (read)
 * tokens; binding 4 (write) out: per (step, row) at `(st.index * MAX_RAGGED_ROWS + b) * 16`: the
 * normaliser, the chosen token's logit, five ids, five logits (floats as their bits).
 */
export const LOGPROBS_WGSL: string = /* wgsl */ `
${STEP_WGSL}
struct Params { V: u32, ldl: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read> tokens: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

const NT: u32 = 256u;
var<workgroup> rv: array<f32, 256>;
var<workgroup> ri: array<u32, 256>;

// whether (v, i) ranks before (bv, bi): larger logit, or the same logit and a lower id
fn before(v: f32, i: u32, bv: f32, bi: u32) -> bool {
  return v > bv || (v == bv && i < bi);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let b = wg.x;
  let row = b * p.ldl;
  var m = -3.4e38;
  for (var v = lid; v < p.V; v += NT) { m = max(m, logits[row + v]); }
  rv[lid] = m;
  workgroupBarrier();
  for (var w = NT / 2u; w > 0u; w = w >> 1u) {
    if (lid < w) { rv[lid] = max(rv[lid], rv[lid + w]); }
    workgroupBarrier();
  }
  m = rv[0];
  workgroupBarrier();
  var s = 0.0;
  for (var v = lid; v < p.V; v += NT) { s += exp(logits[row + v] - m); }
  rv[lid] = s;
  workgroupBarrier();
  for (var w = NT / 2u; w > 0u; w = w >> 1u) {
    if (lid < w) { rv[lid] += rv[lid + w]; }
    workgroupBarrier();
  }
  let o = (st.index * ${MAX_RAGGED_ROWS}u + b) * ${LOGPROB_WORDS}u;
  if (lid == 0u) {
    out[o] = bitcast<u32>(m + log(rv[0]));
    out[o + 1u] = bitcast<u32>(logits[row + tokens[next_of(b)]]);
  }
  workgroupBarrier();
  // the top ones in order: each pass takes the best that ranks after the previous pick
  var pv = 3.4e38;
  var pi = 0xffffffffu;
  for (var k = 0u; k < ${TOP_LOGPROBS}u; k++) {
    var bv = -3.4e38;
    var bi = 0xffffffffu;
    for (var v = lid; v < p.V; v += NT) {
      let l = logits[row + v];
      if (before(pv, pi, l, v) && before(l, v, bv, bi)) {
        bv = l;
        bi = v;
      }
    }
    rv[lid] = bv;
    ri[lid] = bi;
    workgroupBarrier();
    for (var w = NT / 2u; w > 0u; w = w >> 1u) {
      if (lid < w && before(rv[lid + w], ri[lid + w], rv[lid], ri[lid])) {
        rv[lid] = rv[lid + w];
        ri[lid] = ri[lid + w];
      }
      workgroupBarrier();
    }
    pv = rv[0];
    pi = ri[0];
    workgroupBarrier();
    if (lid == 0u) {
      out[o + 2u + k] = pi;
      out[o + 2u + ${TOP_LOGPROBS}u + k] = bitcast<u32>(pv);
    }
  }
}
`;

/** The fields of this kernel"s `Params` struct, in WGSL order (see `params.ts`). */
export const LOGPROBS_PARAMS: ParamsLayout = { struct: "Params", fields: ["V", "ldl", "pad0", "pad1"] };
