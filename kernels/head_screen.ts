/**
 * Exact greedy choice with fewer weight reads, for CPU adapters: the head's logits are first
 * estimated from 8-bit copies of its weights with a rigorous error bound per logit, and only the
 * logits whose bound reaches the best lower bound are computed exactly, in the same order as the
 * matrix kernel, so the chosen id is the one the full head and argmax would choose.
 *
 * For vocabulary row `v` (head column `v`) with weights `w`, the copy is `ŵ = s q` with
 * `s = max |w| / 127` and integers `q` in [-127, 127]. With `e = w - ŵ`, and `x` the normalised
 * hidden state, Cauchy-Schwarz gives `|x·w - x·ŵ| <= |x| |e|`; the float32 rounding of both dot
 * products adds at most `γ_K |x| (|w| + |ŵ|)`. So `bound = |x| c` with
 * `c = |e| + δ (|w| + |ŵ|)` (δ = 8 K 2^-24, more than γ_K) holds for every `x`, and the exact
 * argmax `v*` has `est[v*] + bound[v*] >= exact[v*] >= exact[u] >= est[u] - bound[u]` for every u:
 * it is among the candidates `{v : est[v] + bound[v] >= max_u (est[u] - bound[u])}`. Ties go to
 * the lowest id, as in `torch.argmax`, because candidates are compared in id order.
 *
 * Kernels, per vocabulary chunk unless said: quantize (once per model), screen (estimates, upper
 * bounds, the best lower bound per batch row by `atomicMax`), mark (whole vocabulary: the list of
 * candidates), route (one invocation: too many candidates in some row, and the step falls back
 * to the full head), refine (the candidates' exact logits) and pick (one invocation per batch
 * row: the best candidate into the token buffer, and the count and bound reset for the next step).
 *
 * @module
 */

import { STEP_WGSL } from "./step.ts";
import type { ParamsLayout } from "./params.ts";

/** Vocabulary ids per screening group (one invocation of the screen and refine kernels). */
export const SCREEN_GROUP = 64;
/** Invocations of the refine kernel per batch row (8 workgroups of 16). */
export const REFINE_INVOCATIONS = 128;

/** The params every head-screening kernel reads. */
const PARAMS = /* wgsl */ `
struct HeadParams {
  K: u32,   // hidden size (a multiple of 4)
  N: u32,   // ids in this chunk
  v0: u32,  // first id of the chunk
  G: u32,   // groups of ${SCREEN_GROUP} ids in the whole vocabulary (row stride of ghi and gbest)
  ldh: u32, // row stride of the estimates
  limit: u32, // most candidates per batch row before the full head is used instead
  nargs: u32, // indirect dispatches of the full head (one per chunk, then the argmax)
  pad2: u32,
}
const NONE = 0xffffffffu;
`;

/** An order-preserving map of floats to u32 (for atomicMax) and back; 0 is below every float. */
const KEYS = /* wgsl */ `
fn toKey(f: f32) -> u32 {
  let u = bitcast<u32>(f);
  return select(u | 0x80000000u, ~u, (u & 0x80000000u) != 0u);
}
fn fromKey(k: u32) -> f32 {
  return bitcast<f32>(select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u));
}
`;

/**
 * 8-bit copy of a head chunk and each id's scale and bound factor. One invocation per 4 ids (one
 * u32 of the copy per hidden index); the copy has the chunk's blocked layout, 4 ids to a u32.
 *
 * binding 0 (uniform) p; binding 1 (read) w: the chunk (f32, or halves two to a u32);
 * binding 2 (write) q: the copy; binding 3 (write) sc: [N] (scale s, bound factor c).
 */
export function headQuantWgsl(f16: boolean): string {
  return /* wgsl */ `${PARAMS}
@group(0) @binding(0) var<uniform> p: HeadParams;
@group(0) @binding(1) var<storage, read> w: array<${f16 ? "vec2<u32>" : "vec4f"}>;
@group(0) @binding(2) var<storage, read_write> q: array<u32>;
@group(0) @binding(3) var<storage, read_write> sc: array<vec2f>;

fn load(i: u32) -> vec4f {
  ${f16 ? "let h = w[i];\n  return vec4f(unpack2x16float(h.x), unpack2x16float(h.y));" : "return w[i];"}
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let g = gid.x; // ids 4g .. 4g + 3 of the chunk
  if (4u * g >= p.N) { return; }
  let base = (g / 64u) * p.K * 64u + g % 64u;
  var m = vec4f(0.0);
  for (var k = 0u; k < p.K; k++) { m = max(m, abs(load(base + k * 64u))); }
  let s = m / 127.0;
  let inv = select(vec4f(0.0), 1.0 / s, m > vec4f(0.0));
  var e2 = vec4f(0.0);
  var w2 = vec4f(0.0);
  var h2 = vec4f(0.0);
  for (var k = 0u; k < p.K; k++) {
    let v = load(base + k * 64u);
    let qi = vec4i(clamp(round(v * inv), vec4f(-127.0), vec4f(127.0)));
    let b = bitcast<vec4u>(qi) & vec4u(0xffu);
    q[base + k * 64u] = b.x | (b.y << 8u) | (b.z << 16u) | (b.w << 24u);
    let h = s * vec4f(qi);
    let e = v - h;
    e2 += e * e;
    w2 += v * v;
    h2 += h * h;
  }
  let delta = f32(p.K) * 4.8e-7;
  let c = sqrt(e2) * 1.01 + delta * (sqrt(w2) + sqrt(h2)) + vec4f(1e-30);
  for (var i = 0u; i < 4u; i++) {
    if (4u * g + i < p.N) { sc[4u * g + i] = vec2f(s[i], c[i]); }
  }
}
`;
}

/** vec4<u32> loads of the 8-bit copy per hidden index in one screening invocation. */
const H = SCREEN_GROUP / 16;

/** The screen's inner loop body: load the group's bytes of one hidden index, sign-extend, add. */
function screenBody(): string {
  const lines: string[] = [];
  for (let h = 0; h < H; h++) lines.push(`let q${h} = bitcast<vec4i>(q[i + ${h}u]);`);
  lines.push("let s = vec4f(xv[j]);");
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < 4; i++) {
      const byte = i === 3 ? `q${h} >> vec4u(24u)` : `(q${h} << vec4u(${24 - 8 * i}u)) >> vec4u(24u)`;
      lines.push(`a[${4 * h + i}] = fma(s, vec4f(${byte}), a[${4 * h + i}]);`);
    }
  }
  return lines.map((l) => `      ${l}`).join("\n");
}

/**
 * Estimates of a chunk's logits and their upper bounds, the best upper bound of each group of
 * ${SCREEN_GROUP} ids, and the best lower bound of each batch row (atomicMax over all chunks). One
 * invocation per group and batch row (workgroup y); the 8-bit weights are sign-extended by shifts.
 *
 * binding 0 (uniform) p; binding 1 (uniform) st: the step (its batch rows);
 * binding 2 (read) x: [B, K] the normalised last hidden states; binding 3 (read) q: the copy;
 * binding 4 (read) sc; binding 5 (write) hi: [B, ldh] upper bounds, at v0 + id;
 * binding 6 (write) ghi: [B, G]; binding 7 (write) lo: [B] keys of the best lower bound.
 */
export const HEAD_SCREEN_WGSL: string = /* wgsl */ `${STEP_WGSL}${PARAMS}${KEYS}
@group(0) @binding(0) var<uniform> p: HeadParams;
@group(0) @binding(1) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read> x: array<vec4f>;
@group(0) @binding(3) var<storage, read> q: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> sc: array<vec2f>;
@group(0) @binding(5) var<storage, read_write> hi: array<f32>;
@group(0) @binding(6) var<storage, read_write> ghi: array<f32>;
@group(0) @binding(7) var<storage, read_write> lo: array<atomic<u32>>;

@compute @workgroup_size(16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b = wg.y;
  let g = wg.x * 16u + lid.x;
  let n0 = g * ${SCREEN_GROUP}u;
  if (b >= st.batch || n0 >= p.N) { return; }
  let K4 = p.K / 4u;
  let xb = b * K4;
  // ids n0 .. n0 + ${SCREEN_GROUP - 1}: ${H} vec4<u32> of each 256-id block row; word j of vector h holds ids
  // n0 + 16 h + 4 j .. + 3, one byte each, so a[4 h + i][j] sums id n0 + 16 h + 4 j + i
  let qb = (g / ${256 / SCREEN_GROUP}u) * p.K * 16u + (g % ${256 / SCREEN_GROUP}u) * ${H}u;
  var a: array<vec4f, ${4 * H}>;
  var ss = 0.0;
  for (var k4 = 0u; k4 < K4; k4++) {
    let xv = x[xb + k4];
    ss += dot(xv, xv);
    for (var j = 0u; j < 4u; j++) {
      let i = qb + (k4 * 4u + j) * 16u;
${screenBody()}
    }
  }
  let nx = sqrt(ss) * 1.01;
  var gh = -3.4e38;
  var gl = -3.4e38;
  for (var h = 0u; h < ${H}u; h++) {
    for (var j = 0u; j < 4u; j++) {
      for (var i = 0u; i < 4u; i++) {
        let n = n0 + 16u * h + 4u * j + i;
        if (n < p.N) {
          let f = sc[n];
          let est = a[4u * h + i][j] * f.x;
          // the bound, plus a few ulps of the estimate for the roundings of est + bound
          let bound = nx * f.y + abs(est) * 4.8e-7;
          let up = est + bound;
          hi[b * p.ldh + p.v0 + n] = up;
          gh = max(gh, up);
          gl = max(gl, est - bound);
        }
      }
    }
  }
  ghi[b * p.G + p.v0 / ${SCREEN_GROUP}u + g] = gh;
  atomicMax(&lo[b], toKey(gl));
}
`;

/**
 * The candidates of each batch row, in any order: the ids whose upper bound reaches the row's best
 * lower bound, appended to the row's list by `atomicAdd` on its count. One invocation per group of
 * ${SCREEN_GROUP} ids and batch row (workgroup y), over the whole vocabulary.
 *
 * binding 0 (uniform) p (V in N, v0 0); binding 1 (uniform) st; binding 2 (read) hi;
 * binding 3 (read) ghi; binding 4 (read) lo; binding 5 (write) count: [B];
 * binding 6 (write) list: [B, ldh].
 */
export const HEAD_MARK_WGSL: string = /* wgsl */ `${STEP_WGSL}${PARAMS}${KEYS}
@group(0) @binding(0) var<uniform> p: HeadParams;
@group(0) @binding(1) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read> hi: array<f32>;
@group(0) @binding(3) var<storage, read> ghi: array<f32>;
@group(0) @binding(4) var<storage, read> lo: array<u32>;
@group(0) @binding(5) var<storage, read_write> count: array<atomic<u32>>;
@group(0) @binding(6) var<storage, read_write> list: array<u32>;

@compute @workgroup_size(16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b = wg.y;
  let g = wg.x * 16u + lid.x;
  if (b >= st.batch || g >= p.G) { return; }
  let low = fromKey(lo[b]);
  if (!(ghi[b * p.G + g] >= low)) { return; }
  for (var n = g * ${SCREEN_GROUP}u; n < min(g * ${SCREEN_GROUP}u + ${SCREEN_GROUP}u, p.N); n++) {
    if (hi[b * p.ldh + n] >= low) {
      let i = atomicAdd(&count[b], 1u);
      list[b * p.ldh + i] = n;
    }
  }
}
`;

/**
 * Exact logits of a chunk's candidates, each a float32 sum over k in increasing order with fma,
 * as the CPU matrix kernel computes it. Each invocation takes every 128th entry of its batch
 * row's list (8 workgroups of 16 per row, workgroup y the row).
 *
 * binding 0 (uniform) p; binding 1 (uniform) st; binding 2 (read) x: [B, K];
 * binding 3 (read) w: the chunk (f32, or halves two to a u32); binding 4 (read) count;
 * binding 5 (read) list; binding 6 (write) vals: [B, ldh], the logit of list entry i at i.
 */
export function headRefineWgsl(f16: boolean): string {
  return /* wgsl */ `${STEP_WGSL}${PARAMS}
@group(0) @binding(0) var<uniform> p: HeadParams;
@group(0) @binding(1) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<${f16 ? "u32" : "f32"}>;
@group(0) @binding(4) var<storage, read> count: array<u32>;
@group(0) @binding(5) var<storage, read> list: array<u32>;
@group(0) @binding(6) var<storage, read_write> vals: array<f32>;

fn weight(i: u32) -> f32 {
  ${f16 ? "return unpack2x16float(w[i >> 1u])[i & 1u];" : "return w[i];"}
}

@compute @workgroup_size(16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let b = wg.y;
  if (b >= st.batch) { return; }
  for (var i = wg.x * 16u + lid.x; i < count[b]; i += ${REFINE_INVOCATIONS}u) {
    let v = list[b * p.ldh + i];
    if (v < p.v0 || v >= p.v0 + p.N) { continue; }
    let n = v - p.v0;
    let base = (n / 256u) * p.K * 256u + n % 256u;
    var acc = 0.0;
    for (var k = 0u; k < p.K; k++) { acc = fma(x[b * p.K + k], weight(base + k * 256u), acc); }
    vals[b * p.ldh + i] = acc;
  }
}
`;
}

/**
 * The best candidate of each batch row (the lowest id on ties, as in `torch.argmax`), written
 * into the token buffer after the step's window like the argmax kernel; then the row's count and
 * lower bound are reset for the next step. One invocation per batch row.
 *
 * binding 0 (uniform) p; binding 1 (uniform) st; binding 2 (read) list; binding 3 (read) vals;
 * binding 4 (write) tokens: [B, L]; binding 5 (write) count; binding 6 (write) lo.
 */
export const HEAD_PICK_WGSL: string = /* wgsl */ `${STEP_WGSL}${PARAMS}
@group(0) @binding(0) var<uniform> p: HeadParams;
@group(0) @binding(1) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read> list: array<u32>;
@group(0) @binding(3) var<storage, read> vals: array<f32>;
@group(0) @binding(4) var<storage, read_write> tokens: array<u32>;
@group(0) @binding(5) var<storage, read_write> count: array<u32>;
@group(0) @binding(6) var<storage, read_write> lo: array<u32>;

@compute @workgroup_size(1)
fn main(@builtin(workgroup_id) wg: vec3u) {
  let b = wg.x;
  var best = 0.0;
  var besti = NONE;
  for (var i = 0u; i < count[b]; i++) {
    let v = vals[b * p.ldh + i];
    let id = list[b * p.ldh + i];
    if (besti == NONE || v > best || (v == best && id < besti)) {
      best = v;
      besti = id;
    }
  }
  tokens[next_of(b)] = select(besti, 0u, besti == NONE);
  count[b] = 0u;
  lo[b] = 0u;
}
`;

/**
 * Falls back to the full head when the screen leaves more than `p.limit` candidates in some batch
 * row (then their exact logits would cost more than the full product), or none: copies the full head's
 * indirect dispatch sizes (one per chunk, then the argmax's) from the table, else zeros, and on a
 * fallback empties the candidate lists, so that refine does nothing and the argmax, run after
 * pick, writes the token. One invocation.
 *
 * Counts the screened steps and the fallbacks, so that a model whose head does not screen well
 * can stop screening.
 *
 * binding 0 (uniform) p; binding 1 (uniform) st; binding 2 (read) table: [nargs] (x, y, z, -);
 * binding 3 (write) args: [3 nargs] indirect dispatch sizes; binding 4 (write) count;
 * binding 5 (write) stats: (steps, fallbacks).
 */
export const HEAD_ROUTE_WGSL: string = /* wgsl */ `${STEP_WGSL}${PARAMS}
@group(0) @binding(0) var<uniform> p: HeadParams;
@group(0) @binding(1) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read> table: array<vec4u>;
@group(0) @binding(3) var<storage, read_write> args: array<u32>;
@group(0) @binding(4) var<storage, read_write> count: array<u32>;
@group(0) @binding(5) var<storage, read_write> stats: array<u32, 2>;

@compute @workgroup_size(1)
fn main() {
  var over = false;
  for (var b = 0u; b < st.batch; b++) {
    // no candidate at all only happens with NaN or infinite estimates: the argmax skips NaNs
    if (count[b] > p.limit || count[b] == 0u) { over = true; }
  }
  for (var i = 0u; i < p.nargs; i++) {
    let t = select(vec4u(0u), table[i], over);
    args[3u * i] = t.x;
    args[3u * i + 1u] = t.y;
    args[3u * i + 2u] = t.z;
  }
  stats[0] += 1u;
  if (over) {
    stats[1] += 1u;
    for (var b = 0u; b < st.batch; b++) { count[b] = 0u; }
  }
}
`;

/** The fields of this kernel"s `HeadParams` struct, in WGSL order (see `params.ts`). */
export const HEAD_PARAMS: ParamsLayout = {
  struct: "HeadParams",
  fields: ["K", "N", "v0", "G", "ldh", "limit", "nargs", "pad2"],
};
