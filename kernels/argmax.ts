import { STEP_WGSL } from "./step.ts";
import type { ParamsLayout } from "./params.ts";

/**
 * The params, step and bindings every greedy-choice kernel shares: binding 2 is what it reads,
 * binding 3 what it writes. Params: vocabulary size, row stride of the logits, and for the split
 * kernels the parts per row and the ids per part.
 */

function header(input: string, output: string): string {
  return /* wgsl */ `${STEP_WGSL}
struct Params { V: u32, ldl: u32, G: u32, chunk: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read> ${input};
@group(0) @binding(3) var<storage, read_write> ${output};
`;
}

const BINDINGS = header("logits: array<f32>", "tokens: array<u32>");

/**
 * WGSL statements that reduce each invocation's (best, besti) over a workgroup of n (a power of
 * two) invocations into bv[0], bi[0]: the largest value, the lowest id on ties, no id (0xffffffff)
 * never winning. The result does not depend on how ids were shared out.
 */
function tree(n: number): string {
  return `bv[lid] = best;
  bi[lid] = besti;
  workgroupBarrier();
  for (var s = ${n / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      let ov = bv[lid + s];
      let oi = bi[lid + s];
      if (oi != 0xffffffffu && (ov > bv[lid] || (ov == bv[lid] && oi < bi[lid]) || bi[lid] == 0xffffffffu)) {
        bv[lid] = ov;
        bi[lid] = oi;
      }
    }
    workgroupBarrier();
  }`;
}

/**
 * Greedy choice: the index of the largest logit of each batch row (the first one on ties, like
 * `torch.argmax`), written into the token buffer right after the step's window, where the next
 * step's embedding reads it. Without barriers, for CPU adapters (llvmpipe), where each barrier is
 * a switch between the workgroup's SIMD groups and makes the kernel several times slower to
 * compile: one invocation per workgroup scans its batch row's logits in order. (One workgroup of
 * 256 per row, reduced in workgroup memory, was slower than the split choice below on an H100 and
 * an H200, and was removed.)
 *
 * binding 0 (uniform) p: vocabulary size, row stride of the logits; binding 1 (uniform) st: the step;
 * binding 2 (read) logits: [B, ldl]; binding 3 (read_write) tokens: [B, L]. Dispatch (B).
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
  tokens[next_of(b)] = besti;
}
`;

/** Workgroups per batch row in the first pass of the split greedy choice ({@linkcode ARGMAX_PART_WGSL}). */
export const ARGMAX_PARTS = 64;

/**
 * The greedy choice in two passes, for GPUs, where one workgroup scanning the whole vocabulary
 * waits on one load after another: first {@linkcode ARGMAX_PARTS} workgroups per batch row each
 * take the best (largest, lowest id on ties) of `chunk` consecutive ids and write it as
 * (value bits, id) into `part`, then {@linkcode ARGMAX_FINAL_WGSL} picks the best of those. The
 * pick is the same as {@linkcode ARGMAX_SERIAL_WGSL}'s: the largest logit, the first on ties.
 *
 * binding 0 (uniform) p: vocabulary size, row stride of the logits, parts, ids per part;
 * binding 1 (uniform) st: the step; binding 2 (read) logits: [B, ldl];
 * binding 3 (write) part: [B, parts, 2] u32. Dispatch (parts, B).
 */
export const ARGMAX_PART_WGSL: string = /* wgsl */ `
${header("logits: array<f32>", "part: array<u32>")}
var<workgroup> bv: array<f32, 256>;
var<workgroup> bi: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = wg.x;
  let b = wg.y;
  let v1 = min(p.V, (g + 1u) * p.chunk);
  var best = -3.4e38;
  var besti = 0xffffffffu;
  for (var v = g * p.chunk + lid; v < v1; v += 256u) {
    let x = logits[b * p.ldl + v];
    if (x > best || besti == 0xffffffffu) { best = x; besti = v; }
  }
  ${tree(256)}
  if (lid == 0u) {
    let o = 2u * (b * p.G + g);
    part[o] = bitcast<u32>(bv[0]);
    part[o + 1u] = bi[0];
  }
}
`;

/**
 * The second pass of the split greedy choice: one workgroup per batch row picks the best of the
 * row's {@linkcode ARGMAX_PARTS} parts and writes its id into the token buffer right after the
 * step's window. binding 0 (uniform) p and binding 1 (uniform) st as {@linkcode ARGMAX_PART_WGSL};
 * binding 2 (read) part: [B, parts, 2] u32; binding 3 (read_write) tokens: [B, L]. Dispatch (B).
 */
export const ARGMAX_FINAL_WGSL: string = /* wgsl */ `
${header("part: array<u32>", "tokens: array<u32>")}
var<workgroup> bv: array<f32, ${ARGMAX_PARTS}>;
var<workgroup> bi: array<u32, ${ARGMAX_PARTS}>;

@compute @workgroup_size(${ARGMAX_PARTS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let b = wg.x;
  let o = 2u * (b * p.G + lid);
  let best = bitcast<f32>(part[o]);
  let besti = part[o + 1u];
  ${tree(ARGMAX_PARTS)}
  if (lid == 0u) { tokens[next_of(b)] = bi[0]; }
}
`;

/** The fields of this kernel"s `Params` struct, in WGSL order (see `params.ts`). */
export const ARGMAX_PARAMS: ParamsLayout = { struct: "Params", fields: ["V", "ldl", "G", "chunk"] };
