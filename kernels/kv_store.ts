import { STEP_WGSL } from "./step.ts";

/**
 * Copies the keys and values of a step's rows from the fused q|k|v activations into one layer's
 * key/value cache, at positions `pos0 + t`.
 *
 * binding 0 (uniform) p: C, cache capacity per batch row; binding 1 (uniform) st: the step;
 * binding 2 (read) qkv: [rows, 3C]; binding 3 (write) kc: [B, cap, C]; binding 4 (write) vc: [B, cap, C].
 * One invocation copies one element of k and one of v.
 */
export const KV_STORE_WGSL: string = /* wgsl */ `
${STEP_WGSL}
struct Params { C: u32, cap: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<storage, read_write> kc: array<f32>;
@group(0) @binding(4) var<storage, read_write> vc: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  let m = gid.y;
  if (c >= p.C || m >= st.rows) { return; }
  let b = m / st.T;
  let t = m % st.T;
  let dst = (b * p.cap + st.pos0 + t) * p.C + c;
  let src = m * 3u * p.C + p.C + c;
  kc[dst] = qkv[src];
  vc[dst] = qkv[src + p.C];
}
`;
