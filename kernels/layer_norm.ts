import { STEP_WGSL } from "./step.ts";
import type { ParamsLayout } from "./params.ts";

/** The params, step and bindings both kernels share. */

const BINDINGS = /* wgsl */ `${STEP_WGSL}
struct Params { C: u32, last_only: u32, eps: f32, pad: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// rows written: the step's rows, or with last_only one per batch row
fn outRows() -> u32 { return select(st.rows, st.batch, p.last_only != 0u); }
// the row of x that output row r normalises: r, or with last_only the last token of batch row r
fn inRow(r: u32) -> u32 { return select(r, r * st.T + st.T - 1u, p.last_only != 0u); }
`;

/**
 * LayerNorm over the last dimension (biased variance, eps from the config), then scale and shift.
 * One workgroup of 64 normalises one row. With `last_only`, workgroup b reads the last token of
 * batch row b and writes row b (the output head then runs on B rows only).
 *
 * binding 0 (uniform) p: C, last_only, eps; binding 1 (uniform) st: the step;
 * binding 2 (read) x: [rows, C]; binding 3 (read) w: scale then shift, [2C];
 * binding 4 (write) y: [rows or B, C].
 */
export const LAYER_NORM_WGSL: string = /* wgsl */ `
${BINDINGS}
var<workgroup> red: array<f32, 64>;

fn reduce_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = wg.x;
  if (r >= outRows()) { return; }
  let base = inRow(r) * p.C;
  var s = 0.0;
  for (var c = lid; c < p.C; c += 64u) { s += x[base + c]; }
  let mean = reduce_sum(s, lid) / f32(p.C);
  var s2 = 0.0;
  for (var c = lid; c < p.C; c += 64u) {
    let d = x[base + c] - mean;
    s2 += d * d;
  }
  let rstd = 1.0 / sqrt(reduce_sum(s2, lid) / f32(p.C) + p.eps);
  let ob = r * p.C;
  for (var c = lid; c < p.C; c += 64u) {
    y[ob + c] = (x[base + c] - mean) * rstd * w[c] + w[p.C + c];
  }
}
`;

/**
 * The same LayerNorm without barriers, for CPU adapters (llvmpipe), where each barrier is a switch
 * between the workgroup's SIMD groups and makes the kernel several times slower to compile: one
 * invocation per workgroup normalises one row in three passes over it. Bindings and dispatch as
 * {@linkcode LAYER_NORM_WGSL}.
 */
export const LAYER_NORM_SERIAL_WGSL: string = /* wgsl */ `
${BINDINGS}
@compute @workgroup_size(1)
fn main(@builtin(workgroup_id) wg: vec3u) {
  let r = wg.x;
  if (r >= outRows()) { return; }
  let base = inRow(r) * p.C;
  var s = 0.0;
  for (var c = 0u; c < p.C; c++) { s += x[base + c]; }
  let mean = s / f32(p.C);
  var s2 = 0.0;
  for (var c = 0u; c < p.C; c++) {
    let d = x[base + c] - mean;
    s2 += d * d;
  }
  let rstd = 1.0 / sqrt(s2 / f32(p.C) + p.eps);
  let ob = r * p.C;
  for (var c = 0u; c < p.C; c++) {
    y[ob + c] = (x[base + c] - mean) * rstd * w[c] + w[p.C + c];
  }
}
`;

/** The fields of this kernel"s `Params` struct, in WGSL order (see `params.ts`). */
export const LAYER_NORM_PARAMS: ParamsLayout = {
  struct: "Params",
  fields: ["C", "last_only", "eps", "pad"],
  floats: ["eps"],
};
