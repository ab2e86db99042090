/**
 * The book's loss and the yardsticks between two models, computed where the logits are: one
 * workgroup of 64 per token row, reductions in workgroup memory, only a number or two per row
 * written back.
 *
 * @module
 */

import type { ParamsLayout } from "./params.ts";

/**
 * The params, bindings (binding 1 the logits read, 2 the second input, 3 the output) and the
 * start of the entry point that every per-row kernel here shares: one workgroup of 64 per row `r`
 * whose logits start at `base`.
 */
function perRow(b1: string, b2: string, b3: string): string {
  return /* wgsl */ `
struct Params { V: u32, ldl: u32, rows: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ${b1}: array<f32>;
@group(0) @binding(2) var<storage, read> ${b2};
@group(0) @binding(3) var<storage, read_write> ${b3}: array<f32>;
${REDUCE}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = wg.x;
  if (r >= p.rows) { return; }
  let base = r * p.ldl;`;
}

/** Workgroup reductions over 64 invocations: max, sum, and the first index of the max. */
export const REDUCE = /* wgsl */ `
var<workgroup> rf: array<f32, 64>;
var<workgroup> ri: array<u32, 64>;

fn maxAll(v: f32, lid: u32) -> f32 {
  rf[lid] = v;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s = s >> 1u) {
    if (lid < s) { rf[lid] = max(rf[lid], rf[lid + s]); }
    workgroupBarrier();
  }
  let m = rf[0];
  workgroupBarrier();
  return m;
}

fn sumAll(v: f32, lid: u32) -> f32 {
  rf[lid] = v;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s = s >> 1u) {
    if (lid < s) { rf[lid] = rf[lid] + rf[lid + s]; }
    workgroupBarrier();
  }
  let m = rf[0];
  workgroupBarrier();
  return m;
}

// the lowest index whose value is the row's maximum m (like torch.argmax)
fn firstAll(i: u32, lid: u32) -> u32 {
  ri[lid] = i;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s = s >> 1u) {
    if (lid < s) { ri[lid] = min(ri[lid], ri[lid + s]); }
    workgroupBarrier();
  }
  let m = ri[0];
  workgroupBarrier();
  return m;
}
`;

/**
 * Cross-entropy of each row's logits against its target id, as PyTorch's
 * `cross_entropy(logits, target, reduction="none")`: `log(sum exp(x - max)) + max - x[target]`.
 *
 * binding 0 (uniform) p: vocabulary size V, row stride ldl, rows; binding 1 (read) logits: [rows, ldl];
 * binding 2 (read) targets: [rows] u32; binding 3 (read_write) loss: [rows] f32. Dispatch (rows).
 */
export const CROSS_ENTROPY_WGSL: string = /* wgsl */ `${perRow("logits", "targets: array<u32>", "loss")}
  var m = -3.4e38;
  for (var v = lid; v < p.V; v += 64u) { m = max(m, logits[base + v]); }
  m = maxAll(m, lid);
  var s = 0.0;
  for (var v = lid; v < p.V; v += 64u) { s += exp(logits[base + v] - m); }
  s = sumAll(s, lid);
  if (lid == 0u) { loss[r] = log(s) + m - logits[base + targets[r]]; }
}
`;

/**
 * The divergence of one model's next-token distribution from another's, row by row: the KL
 * divergence `sum p (log p - log q)` of `q` (logits `b`) from `p` (logits `a`), and whether their
 * argmaxes agree (1 or 0).
 *
 * binding 0 (uniform) p: V, ldl, rows; binding 1 (read) a: [rows, ldl]; binding 2 (read) b: [rows, ldl];
 * binding 3 (read_write) out: [rows, 2] f32 (KL, agreement). Dispatch (rows).
 */
export const KL_DIVERGENCE_WGSL: string = /* wgsl */ `${perRow("a", "b: array<f32>", "out")}
  var ma = -3.4e38;
  var mb = -3.4e38;
  for (var v = lid; v < p.V; v += 64u) {
    ma = max(ma, a[base + v]);
    mb = max(mb, b[base + v]);
  }
  ma = maxAll(ma, lid);
  mb = maxAll(mb, lid);
  var ia = 0xffffffffu;
  var ib = 0xffffffffu;
  var sa = 0.0;
  var sb = 0.0;
  var t = 0.0;
  for (var v = lid; v < p.V; v += 64u) {
    let xa = a[base + v] - ma;
    let xb = b[base + v] - mb;
    if (xa == 0.0 && ia == 0xffffffffu) { ia = v; }
    if (xb == 0.0 && ib == 0xffffffffu) { ib = v; }
    let ea = exp(xa);
    sa += ea;
    sb += exp(xb);
    t += ea * (xa - xb);
  }
  sa = sumAll(sa, lid);
  sb = sumAll(sb, lid);
  t = sumAll(t, lid);
  ia = firstAll(ia, lid);
  ib = firstAll(ib, lid);
  if (lid == 0u) {
    // sum p (log p - log q) with p = ea / sa, log p = xa - log sa, log q = xb - log sb
    out[2u * r] = max(0.0, t / sa - log(sa) + log(sb));
    out[2u * r + 1u] = select(0.0, 1.0, ia == ib);
  }
}
`;

/** The fields of this kernel"s `Params` struct, in WGSL order (see `params.ts`). */
export const LOSS_PARAMS: ParamsLayout = { struct: "Params", fields: ["V", "ldl", "rows", "pad"] };
