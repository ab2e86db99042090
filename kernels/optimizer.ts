/**
 * The optimizer's kernels: AdamW's update, the gradients' global norm and clipping, and the copy
 * of trained parameters into the inference weights' layout.
 *
 * @module
 */

import { ELEMENTWISE } from "./train.ts";

/**
 * `torch.optim.AdamW`'s update of one tensor (PyTorch 1.13's single-tensor loop):
 * `w *= 1 - lr wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; w -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)`.
 * P: n, decay (`1 - lr wd`), b1, b2, step size (`lr / bc1`), sqrt(bc2), eps. Bindings: P, grad, w, m, v.
 * Dispatch `(ceil(n / 256))` in rows of at most 65,535 groups (`y` of the grid).
 */
export const ADAMW_WGSL = /* wgsl */ `
struct P { n: u32, decay: f32, b1: f32, b2: f32, stepSize: f32, bc2sqrt: f32, eps: f32, p0: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
${ELEMENTWISE}
  let g = grad[i];
  let wi = w[i] * p.decay;
  let mi = m[i] * p.b1 + g * (1.0 - p.b1);
  let vi = v[i] * p.b2 + (1.0 - p.b2) * g * g;
  m[i] = mi;
  v[i] = vi;
  w[i] = wi + (-p.stepSize) * (mi / (sqrt(vi) / p.bc2sqrt + p.eps));
}`;

/**
 * Sums of squares in parts: workgroup `j` of tensor `t` writes the sum of squares of its stride of
 * `x` into `parts[p0 + j]`. P: n, p0. Bindings: P, x, parts. Dispatch `(groups)` of 256.
 */
export const SUMSQ_WGSL = /* wgsl */ `
struct P { n: u32, p0: u32, q0: u32, q1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> parts: array<f32>;
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = wg.x * 256u + lid; i < p.n; i += nw.x * 256u) { s = s + x[i] * x[i]; }
  red[lid] = s;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k = k >> 1u) {
    if (lid < k) { red[lid] = red[lid] + red[lid + k]; }
    workgroupBarrier();
  }
  if (lid == 0u) { parts[p.p0 + wg.x] = red[0]; }
}`;

/**
 * `clip_grad_norm_`'s coefficient: tensor `t`'s norm is `sqrt` of the sum of its parts
 * `parts[start[t] .. start[t+1]]`, the total norm the norm of those, and `out = [total, min(1,
 * maxNorm / (total + 1e-6))]`. P: tensors, maxNorm. Bindings: P, start (u32), parts, out. Dispatch (1).
 */
export const CLIP_COEF_WGSL = /* wgsl */ `
struct P { tensors: u32, maxNorm: f32, p0: u32, p1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> start: array<u32>;
@group(0) @binding(2) var<storage, read> parts: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1)
fn main() {
  var total = 0.0;
  for (var t = 0u; t < p.tensors; t++) {
    var s = 0.0;
    for (var j = start[t]; j < start[t + 1u]; j++) { s = s + parts[j]; }
    let norm = sqrt(s);
    total = total + norm * norm;
  }
  let n = sqrt(total);
  out[0] = n;
  out[1] = min(1.0, p.maxNorm / (n + 1e-6));
}`;

/**
 * Scales a tensor in place by `coef[1]` (the clipping coefficient). P: n. Bindings: P, coef, x.
 * Dispatch `(ceil(n / 256))` in rows of at most 65,535 groups (`y` of the grid).
 */
export const SCALE_WGSL = /* wgsl */ `
struct P { n: u32, p0: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> coef: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
${ELEMENTWISE}
  x[i] = x[i] * coef[1];
}`;

/**
 * A `[N, K]` PyTorch matrix (rows `n`, from element `s0`) into the inference layout: input-major
 * blocks of 256 columns, element `(k, n)` at `((n / 256) * K + k) * 256 + n % 256`. P: N, K, s0.
 * Bindings: P, src, dst. Dispatch `(ceil(K / 64), N)`.
 */
export const RELAYOUT_WGSL = /* wgsl */ `
struct P { N: u32, K: u32, s0: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let k = g.x;
  let n = g.y;
  if (k >= p.K || n >= p.N) { return; }
  dst[((n / 256u) * p.K + k) * 256u + n % 256u] = src[p.s0 + n * p.K + k];
}`;
