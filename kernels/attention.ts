import { STEP_WGSL } from "./step.ts";
import type { ParamsLayout } from "./params.ts";

/** The params, step and bindings both attention kernels share, with activations as `t` arrays. */

function bindings(t: "f32" | "vec4f"): string {
  return /* wgsl */ `${STEP_WGSL}
struct Params { C: u32, H: u32, hd: u32, cap: u32, scale: f32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read> qkv: array<${t}>;
@group(0) @binding(3) var<storage, read_write> kc: array<${t}>;
@group(0) @binding(4) var<storage, read_write> vc: array<${t}>;
@group(0) @binding(5) var<storage, read_write> out: array<${t}>;`;
}

/**
 * Causal multi-head attention over the key/value cache, softmax(q k^T / sqrt(head_dim)) v, which
 * also stores the step's keys and values in the cache. Query t of batch row b (position pos0 + t)
 * sees keys 0..pos0 + t: those before pos0 from the cache, the step's own from the q|k|v rows; the
 * workgroup of query t writes its row's key and value for its head into cache slot pos0 + t, which
 * no query of the same dispatch reads from the cache (so no separate store dispatch is needed). One workgroup of AW
 * invocations handles one (query, head, batch row). Keys go in blocks of KB = AW / PARTS: each
 * key's score is the sum of PARTS partial dot products (one per invocation), then a running
 * maximum and sum rescale the output (online softmax). For the weighted sum of values the
 * invocations split into AW / 64 slices of keys, each accumulating up to 4 output dims per
 * invocation; the slices are added at the end. On a CPU adapter AW = 64 and PARTS = 1; a GPU
 * uses more invocations to shorten each one's chain of loads.
 *
 * binding 0 (uniform) p: C, heads, head_dim, cache capacity, scale; binding 1 (uniform) st: the step;
 * binding 2 (read) qkv: [rows, 3C] (q, k, v); binding 3 (read_write) kc, binding 4 (read_write) vc:
 * [B, cap, C]; binding 5 (write) out: [rows, C]. Dispatch (T, heads, B).
 */
export const ATTENTION_WGSL: string = /* wgsl */ `
${bindings("f32")}

override AW: u32 = 64u;   // invocations per workgroup, a multiple of 64, at most 256
override PARTS: u32 = 1u; // invocations per key score

const NEG: f32 = -3.0e38;
var<workgroup> qs: array<f32, 256>;
var<workgroup> partial: array<f32, 256>;
var<workgroup> sc: array<f32, 256>;
var<workgroup> pr: array<f32, 256>;
var<workgroup> acc_s: array<vec4f, 256>;

@compute @workgroup_size(AW)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wg.x;
  let h = wg.y;
  let b = wg.z;
  let m = b * st.T + t;
  let hoff = h * p.hd;
  let KB = AW / PARTS;
  let pos0 = pos0_of(b);
  let cb = slot_of(b) * p.cap;
  let row = m * 3u * p.C + hoff;
  let slot = (cb + pos0 + t) * p.C + hoff;
  for (var d = lid; d < p.hd; d += AW) {
    qs[d] = qkv[row + d];
    kc[slot + d] = qkv[row + p.C + d];
    vc[slot + d] = qkv[row + 2u * p.C + d];
  }
  workgroupBarrier();
  let nkeys = pos0 + t + 1u;
  let step0 = b * st.T; // the q|k|v row of key pos0
  let key_of = lid / PARTS;  // key in the block this invocation scores
  let part = lid % PARTS;
  let dim = lid % 64u;       // output dims dim, dim + 64, ... in the weighted sum
  let slice = lid / 64u;     // which keys of the block this invocation adds up
  let nslices = AW / 64u;
  var acc = vec4f(0.0);
  var run_max = NEG;
  var run_sum = 0.0;
  for (var j0 = 0u; j0 < nkeys; j0 += KB) {
    let j = j0 + key_of;
    var s = 0.0;
    if (j < pos0) {
      let kb = (cb + j) * p.C + hoff;
      for (var d = part; d < p.hd; d += PARTS) { s = fma(qs[d], kc[kb + d], s); }
    } else if (j < nkeys) {
      let kb = (step0 + j - pos0) * 3u * p.C + p.C + hoff;
      for (var d = part; d < p.hd; d += PARTS) { s = fma(qs[d], qkv[kb + d], s); }
    }
    partial[lid] = s;
    workgroupBarrier();
    if (part == 0u) {
      var tot = 0.0;
      for (var i = 0u; i < PARTS; i++) { tot += partial[lid + i]; }
      sc[key_of] = select(NEG, tot * p.scale, j < nkeys);
    }
    workgroupBarrier();
    let n = min(KB, nkeys - j0);
    var bmax = NEG;
    for (var i = 0u; i < n; i++) { bmax = max(bmax, sc[i]); }
    let new_max = max(run_max, bmax);
    let corr = exp(run_max - new_max);
    // each key's weight, once
    if (part == 0u) { pr[key_of] = select(0.0, exp(sc[key_of] - new_max), j < nkeys); }
    workgroupBarrier();
    var bsum = 0.0;
    for (var i = 0u; i < n; i++) { bsum += pr[i]; }
    run_sum = run_sum * corr + bsum;
    acc = acc * corr;
    for (var i = slice; i < n; i += nslices) {
      let pi = pr[i];
      let jv = j0 + i;
      if (jv < pos0) {
        let vb = (cb + jv) * p.C + hoff;
        for (var q = 0u; q < 4u; q++) {
          let d = dim + 64u * q;
          if (d < p.hd) { acc[q] = fma(pi, vc[vb + d], acc[q]); }
        }
      } else {
        let vb = (step0 + jv - pos0) * 3u * p.C + 2u * p.C + hoff;
        for (var q = 0u; q < 4u; q++) {
          let d = dim + 64u * q;
          if (d < p.hd) { acc[q] = fma(pi, qkv[vb + d], acc[q]); }
        }
      }
    }
    run_max = new_max;
    workgroupBarrier();
  }
  if (nslices > 1u) {
    acc_s[lid] = acc;
    workgroupBarrier();
    if (slice != 0u) { return; }
    for (var s2 = 1u; s2 < nslices; s2++) { acc += acc_s[s2 * 64u + dim]; }
  }
  for (var q = 0u; q < 4u; q++) {
    let d = dim + 64u * q;
    if (d < p.hd) { out[m * p.C + hoff + d] = acc[q] / run_sum; }
  }
}
`;

/**
 * The attention of {@linkcode ATTENTION_WGSL} for GPUs, with the head size a multiple of 4
 * (`HD4` = head_dim / 4, at most 64, set per model), made for decoding, where each query sees up
 * to the whole context: one workgroup of 256 per (query, head, batch row), keys in blocks of `KB`
 * (at most 1024). For each block, each invocation scores whole keys (one per invocation, vec4
 * loads of the key row), the block maximum comes from a tree over the workgroup, each key's
 * weight is computed once into workgroup memory, and then the invocations split into 256 / HD4
 * slices of keys, each invocation adding one vec4 of output dims (and the weights) over its
 * slice's keys, four cached values in flight at a time; the slices are added in order at the end. A running maximum rescales the sums
 * between blocks (online softmax). The order of every sum depends only on the key and the
 * number of keys, not on whether a key came from the cache or the step's q|k|v rows, so a query
 * gets the same output in a decoding step as in a full pass. Bindings as
 * {@linkcode ATTENTION_WGSL} (as vec4 arrays); dispatch (T, heads, B).
 */
export const ATTENTION_BLOCK_WGSL: string = /* wgsl */ `
${bindings("vec4f")}

override HD4: u32 = 16u;  // head_dim / 4, at most 64
override KB: u32 = 1024u; // keys per block, at most 1024

const AW: u32 = 256u;
const NEG: f32 = -3.0e38;
var<workgroup> qs: array<vec4f, 64>;
var<workgroup> sc: array<f32, 1024>;
var<workgroup> red: array<f32, 256>;
var<workgroup> acc_s: array<vec4f, 256>;
var<workgroup> sum_s: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wg.x;
  let h = wg.y;
  let b = wg.z;
  let m = b * st.T + t;
  let C4 = p.C / 4u;
  let hoff = h * HD4;
  let row = m * 3u * C4 + hoff;
  let pos0 = pos0_of(b);
  let cb = slot_of(b) * p.cap;  // cache row of key 0
  if (lid < HD4) {
    let slot = (cb + pos0 + t) * C4 + hoff;
    qs[lid] = qkv[row + lid];
    kc[slot + lid] = qkv[row + C4 + lid];
    vc[slot + lid] = qkv[row + 2u * C4 + lid];
  }
  workgroupBarrier();
  let nkeys = pos0 + t + 1u;
  let sb = b * st.T;           // q|k|v row of key pos0
  let NS = AW / HD4;           // key slices in the weighted sum
  let slice = lid / HD4;
  let d4 = lid % HD4;
  var acc = vec4f(0.0);
  var wsum = 0.0;
  var run_max = NEG;
  for (var j0 = 0u; j0 < nkeys; j0 += KB) {
    let n = min(KB, nkeys - j0);
    var lmax = NEG;
    for (var i = lid; i < n; i += AW) {
      let j = j0 + i;
      var s4 = vec4f(0.0);
      if (j < pos0) {
        let kb = (cb + j) * C4 + hoff;
        for (var d = 0u; d < HD4; d++) { s4 = fma(qs[d], kc[kb + d], s4); }
      } else {
        let kb = (sb + j - pos0) * 3u * C4 + C4 + hoff;
        for (var d = 0u; d < HD4; d++) { s4 = fma(qs[d], qkv[kb + d], s4); }
      }
      let s = (s4.x + s4.y + s4.z + s4.w) * p.scale;
      sc[i] = s;
      lmax = max(lmax, s);
    }
    red[lid] = lmax;
    workgroupBarrier();
    for (var w = AW / 2u; w > 0u; w = w >> 1u) {
      if (lid < w) { red[lid] = max(red[lid], red[lid + w]); }
      workgroupBarrier();
    }
    let new_max = max(run_max, red[0]);
    let corr = exp(run_max - new_max);
    for (var i = lid; i < n; i += AW) { sc[i] = exp(sc[i] - new_max); }
    workgroupBarrier();
    acc = acc * corr;
    wsum = wsum * corr;
    if (slice < NS) {
      // this slice's keys in order: the cached ones (four loads in flight per trip), then the step's
      let nc = select(0u, min(n, pos0 - j0), pos0 > j0);
      var i = slice;
      for (; i + 3u * NS < nc; i += 4u * NS) {
        let vb = (cb + j0 + i) * C4 + hoff + d4;
        let v0 = vc[vb];
        let v1 = vc[vb + NS * C4];
        let v2 = vc[vb + 2u * NS * C4];
        let v3 = vc[vb + 3u * NS * C4];
        acc = fma(vec4f(sc[i]), v0, acc);
        wsum += sc[i];
        acc = fma(vec4f(sc[i + NS]), v1, acc);
        wsum += sc[i + NS];
        acc = fma(vec4f(sc[i + 2u * NS]), v2, acc);
        wsum += sc[i + 2u * NS];
        acc = fma(vec4f(sc[i + 3u * NS]), v3, acc);
        wsum += sc[i + 3u * NS];
      }
      for (; i < nc; i += NS) {
        acc = fma(vec4f(sc[i]), vc[(cb + j0 + i) * C4 + hoff + d4], acc);
        wsum += sc[i];
      }
      for (; i < n; i += NS) {
        acc = fma(vec4f(sc[i]), qkv[(sb + j0 + i - pos0) * 3u * C4 + 2u * C4 + hoff + d4], acc);
        wsum += sc[i];
      }
    }
    run_max = new_max;
    workgroupBarrier(); // sc and red are written again for the next block
  }
  acc_s[lid] = acc;
  if (d4 == 0u) { sum_s[slice] = wsum; }
  workgroupBarrier();
  if (lid < HD4) {
    var tot = acc_s[lid];
    var ws = sum_s[0];
    for (var s2 = 1u; s2 < NS; s2++) {
      tot += acc_s[s2 * HD4 + lid];
      ws += sum_s[s2];
    }
    out[m * C4 + hoff + lid] = tot / ws;
  }
}
`;

/**
 * One pass of the serial kernel's key loop: keys j0 <= j < j1, key row of j at `kb` in `keys`,
 * value row at `vb` in `vals` (vec4 indices), with the running maximum, sum and output.
 */
function keyLoop(j0: string, j1: string, keys: string, kb: string, vals: string, vb: string): string {
  return `for (var j = ${j0}; j < ${j1}; j++) {
    let kb = ${kb};
    let vb = ${vb};
    var s4 = vec4f(0.0);
    for (var d = 0u; d < hd4; d++) { s4 = fma(q[d], ${keys}[kb + d], s4); }
    let s = s4.x + s4.y + s4.z + s4.w;
    if (s > run_max) {
      let corr = exp(run_max - s);
      run_sum *= corr;
      for (var d = 0u; d < hd4; d++) { acc[d] *= corr; }
      run_max = s;
    }
    let w = exp(s - run_max);
    run_sum += w;
    for (var d = 0u; d < hd4; d++) { acc[d] = fma(vec4f(w), ${vals}[vb + d], acc[d]); }
  }`;
}

/**
 * The same attention (and cache store) with no workgroup barriers, for CPU adapters (llvmpipe),
 * where each barrier is a switch between the workgroup's SIMD groups: one invocation handles one
 * (query, head, batch row), stores its row's key and value for its head at slot pos0 + t, and walks
 * its keys in order (the cached ones, then the step's own from the q|k|v rows) with a running
 * maximum and sum, keeping q and the output (up to 256 dims) in private arrays. Bindings as
 * {@linkcode ATTENTION_WGSL}; dispatch (ceil(T * heads / 64), B).
 */
export const ATTENTION_SERIAL_WGSL: string = /* wgsl */ `
${bindings("vec4f")}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let b = gid.y;
  if (gid.x >= st.T * p.H) { return; }
  let t = gid.x / p.H;
  let h = gid.x % p.H;
  let m = b * st.T + t;
  let C4 = p.C / 4u;
  let hd4 = p.hd / 4u;
  let hoff4 = h * hd4;
  let row = m * 3u * C4 + hoff4;
  let pos0 = pos0_of(b);
  let cb = slot_of(b) * p.cap;
  let slot = (cb + pos0 + t) * C4 + hoff4;
  var q: array<vec4f, 64>;
  var acc: array<vec4f, 64>;
  for (var d = 0u; d < hd4; d++) {
    q[d] = qkv[row + d] * p.scale;
    kc[slot + d] = qkv[row + C4 + d];
    vc[slot + d] = qkv[row + 2u * C4 + d];
    acc[d] = vec4f(0.0);
  }
  let nkeys = pos0 + t + 1u;
  var run_max = -3.0e38;
  var run_sum = 0.0;
  ${keyLoop("0u", "pos0", "kc", "(cb + j) * C4 + hoff4", "vc", "kb")}
  ${keyLoop("pos0", "nkeys", "qkv", "(b * st.T + j - pos0) * 3u * C4 + C4 + hoff4", "qkv", "kb + C4")}
  for (var d = 0u; d < hd4; d++) { out[m * C4 + hoff4 + d] = acc[d] / run_sum; }
}
`;

/** The fields of this kernel"s `Params` struct, in WGSL order (see `params.ts`). */
export const ATTENTION_PARAMS: ParamsLayout = {
  struct: "Params",
  fields: ["C", "H", "hd", "cap", "scale", "pad0", "pad1", "pad2"],
  floats: ["scale"],
};
