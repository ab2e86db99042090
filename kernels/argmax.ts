import { STEP_WGSL } from "./step.ts";

/** The params, step and bindings both kernels share. */
const BINDINGS = /* wgsl */ `${STEP_WGSL}
struct Params { V: u32, ldl: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read_write> tokens: array<u32>;
`;

/**
 * Greedy choice: the index of the largest logit of each batch row (the first one on ties, like
 * `torch.argmax`), written into the token buffer right after the step's window, where the next
 * step's embedding reads it. One workgroup of 256 per batch row; each invocation keeps eight
 * loads in flight (on a GPU a scan with one load at a time waits on each).
 *
 * binding 0 (uniform) p: vocabulary size, row stride of the logits; binding 1 (uniform) st: the step;
 * binding 2 (read) logits: [B, ldl]; binding 3 (read_write) tokens: [B, L].
 */
export const ARGMAX_WGSL: string = /* wgsl */ `
${BINDINGS}
var<workgroup> bv: array<f32, 256>;
var<workgroup> bi: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let b = wg.x;
  var best = -3.4e38;
  var besti = 0xffffffffu;
  // ids lid, lid + 256, ... in increasing order, eight loads in flight per loop trip
  for (var v0 = lid; v0 < p.V; v0 += 2048u) {
    var xs: array<f32, 8>;
    for (var u = 0u; u < 8u; u++) {
      let v = min(v0 + 256u * u, p.V - 1u);
      xs[u] = logits[b * p.ldl + v];
    }
    for (var u = 0u; u < 8u; u++) {
      let v = v0 + 256u * u;
      if (v < p.V && (xs[u] > best || besti == 0xffffffffu)) { best = xs[u]; besti = v; }
    }
  }
  bv[lid] = best;
  bi[lid] = besti;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      let ov = bv[lid + s];
      let oi = bi[lid + s];
      if (oi != 0xffffffffu && (ov > bv[lid] || (ov == bv[lid] && oi < bi[lid]) || bi[lid] == 0xffffffffu)) {
        bv[lid] = ov;
        bi[lid] = oi;
      }
    }
    workgroupBarrier();
  }
  if (lid == 0u) { tokens[b * st.L + st.start + st.T] = bi[0]; }
}
`;

/**
 * The same choice without barriers, for CPU adapters (llvmpipe), where each barrier is a switch
 * between the workgroup's SIMD groups and makes the kernel several times slower to compile: one
 * invocation per workgroup scans its batch row's logits in order. Bindings and dispatch as
 * {@linkcode ARGMAX_WGSL}.
 */
export const ARGMAX_SERIAL_WGSL: string = /* wgsl */ `
${BINDINGS}
@compute @workgroup_size(1)
fn main(@builtin(workgroup_id) wg: vec3u) {
  let b = wg.x;
  var best = -3.4e38;
  var besti = 0xffffffffu;
  for (var v = 0u; v < p.V; v++) {
    let x = logits[b * p.ldl + v];
    if (x > best || besti == 0xffffffffu) { best = x; besti = v; }
  }
  tokens[b * st.L + st.start + st.T] = besti;
}
`;
