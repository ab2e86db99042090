import { STEP_WGSL } from "./step.ts";

/**
 * Causal multi-head attention over the key/value cache, softmax(q k^T / sqrt(head_dim)) v.
 * Query t of batch row b (position pos0 + t) sees cache slots 0..pos0 + t. One workgroup of 64
 * handles one (query, head, batch row): keys go in blocks of 64 (one score per invocation) with
 * a running maximum and sum (online softmax); each invocation accumulates up to 4 output dims.
 *
 * binding 0 (uniform) p: C, heads, head_dim, cache capacity, scale; binding 1 (uniform) st: the step;
 * binding 2 (read) qkv: [rows, 3C] (q first); binding 3 (read) kc, binding 4 (read) vc: [B, cap, C];
 * binding 5 (write) out: [rows, C]. Dispatch (T, heads, B).
 */
export const ATTENTION_WGSL: string = /* wgsl */ `
${STEP_WGSL}
struct Params { C: u32, H: u32, hd: u32, cap: u32, scale: f32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<storage, read> kc: array<f32>;
@group(0) @binding(4) var<storage, read> vc: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

const NEG: f32 = -3.0e38;
var<workgroup> qs: array<f32, 256>;
var<workgroup> sc: array<f32, 64>;
var<workgroup> pr: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = wg.x;
  let h = wg.y;
  let b = wg.z;
  let m = b * st.T + t;
  let hoff = h * p.hd;
  for (var d = lid; d < p.hd; d += 64u) { qs[d] = qkv[m * 3u * p.C + hoff + d]; }
  workgroupBarrier();
  let nkeys = st.pos0 + t + 1u;
  let cb = b * p.cap;
  var acc = vec4f(0.0);
  var run_max = NEG;
  var run_sum = 0.0;
  for (var j0 = 0u; j0 < nkeys; j0 += 64u) {
    let j = j0 + lid;
    var s = NEG;
    if (j < nkeys) {
      let kb = (cb + j) * p.C + hoff;
      var dot = 0.0;
      for (var d = 0u; d < p.hd; d++) { dot = fma(qs[d], kc[kb + d], dot); }
      s = dot * p.scale;
    }
    sc[lid] = s;
    workgroupBarrier();
    var bmax = NEG;
    for (var i = 0u; i < 64u; i++) { bmax = max(bmax, sc[i]); }
    let new_max = max(run_max, bmax);
    let corr = exp(run_max - new_max);
    pr[lid] = select(0.0, exp(s - new_max), j < nkeys);
    workgroupBarrier();
    let n = min(64u, nkeys - j0);
    var bsum = 0.0;
    for (var i = 0u; i < n; i++) { bsum += pr[i]; }
    run_sum = run_sum * corr + bsum;
    acc = acc * corr;
    for (var i = 0u; i < n; i++) {
      let vb = (cb + j0 + i) * p.C + hoff;
      let pi = pr[i];
      for (var q = 0u; q < 4u; q++) {
        let d = lid + 64u * q;
        if (d < p.hd) { acc[q] = fma(pi, vc[vb + d], acc[q]); }
      }
    }
    run_max = new_max;
    workgroupBarrier();
  }
  for (var q = 0u; q < 4u; q++) {
    let d = lid + 64u * q;
    if (d < p.hd) { out[m * p.C + hoff + d] = acc[q] / run_sum; }
  }
}
`;
