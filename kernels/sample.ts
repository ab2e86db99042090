import { STEP_WGSL } from "./step.ts";
import { encodeParams, type ParamsLayout } from "./params.ts";

/**
 * Sampling of the next token of each batch row, with the book's chapter 5 semantics: top-k first
 * (logits below the k-th largest are dropped), then the temperature, softmax, top-p (the smallest
 * set of tokens, by probability, whose mass reaches top_p; tokens tied with its last member are
 * kept too), and a draw. One workgroup of 256 per row. Thresholds are found exactly by binary search
 * over the 32 bits of an order-preserving integer key of the logits. The draw uses a counter-based
 * hash of (seed, step index, row), so a call's result depends only on its inputs. In a ragged step
 * each row has its own settings, seed, step index and row of its request, so a request draws the
 * same tokens in a shared batch as alone; a row with temperature 0 keeps the argmax's choice.
 * The chosen id is written into the token buffer after the step's window, like the argmax.
 *
 * binding 0 (uniform) p: vocabulary size, logits row stride, top_k (0: off), top_p, temperature, seed;
 * binding 1 (uniform) st: the step; binding 2 (read) logits: [B, ldl]; binding 3 (read_write) tokens.
 */

export const SAMPLE_WGSL: string = /* wgsl */ `
${STEP_WGSL}
struct Params { V: u32, ldl: u32, topk: u32, seed: u32, temp: f32, topp: f32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read_write> tokens: array<u32>;

const NT: u32 = 256u;
var<workgroup> red: array<f32, 256>;
var<workgroup> redu: array<u32, 256>;

// order-preserving key: a < b as floats <=> key(a) < key(b) as unsigned integers
fn key(x: f32) -> u32 {
  let u = bitcast<u32>(x);
  return select(u ^ 0x80000000u, ~u, (u & 0x80000000u) != 0u);
}

fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}

fn sum_f(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  var t = 0.0;
  for (var i = 0u; i < NT; i++) { t += red[i]; }
  workgroupBarrier();
  return t;
}

fn sum_u(v: u32, lid: u32) -> u32 {
  redu[lid] = v;
  workgroupBarrier();
  var t = 0u;
  for (var i = 0u; i < NT; i++) { t += redu[i]; }
  workgroupBarrier();
  return t;
}

fn max_f(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  var t = -3.4e38;
  for (var i = 0u; i < NT; i++) { t = max(t, red[i]); }
  workgroupBarrier();
  return t;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let b = wg.x;
  let row = b * p.ldl;
  // a ragged step's rows carry their own settings; a greedy row keeps the argmax's choice
  let rg = st.row[b];
  let ragged = st.ragged != 0u;
  if (ragged && rg.temp == 0.0) { return; }
  let temp = select(p.temp, rg.temp, ragged);
  let topk = select(p.topk, rg.topk, ragged);
  let topp = select(p.topp, rg.topp, ragged);
  let seed = select(p.seed, rg.seed, ragged);
  let index = select(st.index, rg.index, ragged);
  let draw = select(b, rg.draw, ragged);
  var m = -3.4e38;
  for (var v = lid; v < p.V; v += NT) { m = max(m, logits[row + v]); }
  m = max_f(m, lid);
  // top-k: the largest key threshold that keeps at least k logits
  var kth = 0u;
  if (topk > 0u && topk < p.V) {
    for (var bit = 31i; bit >= 0i; bit--) {
      let cand = kth | (1u << u32(bit));
      var c = 0u;
      for (var v = lid; v < p.V; v += NT) { c += select(0u, 1u, key(logits[row + v]) >= cand); }
      if (sum_u(c, lid) >= topk) { kth = cand; }
    }
  }
  // top-p: the largest key threshold whose kept mass reaches top_p of the total
  var pth = kth;
  if (topp < 1.0) {
    var tot = 0.0;
    for (var v = lid; v < p.V; v += NT) {
      let l = logits[row + v];
      tot += select(0.0, exp((l - m) / temp), key(l) >= kth);
    }
    let goal = topp * sum_f(tot, lid);
    for (var bit = 31i; bit >= 0i; bit--) {
      let cand = pth | (1u << u32(bit));
      var s = 0.0;
      for (var v = lid; v < p.V; v += NT) {
        let l = logits[row + v];
        s += select(0.0, exp((l - m) / temp), key(l) >= cand);
      }
      if (sum_f(s, lid) >= goal) { pth = cand; }
    }
  }
  // the draw: each invocation owns a contiguous segment of ids
  let seg = (p.V + NT - 1u) / NT;
  let v0 = min(lid * seg, p.V);
  let v1 = min(v0 + seg, p.V);
  var mine = 0.0;
  var last = 0xffffffffu;
  for (var v = v0; v < v1; v++) {
    let l = logits[row + v];
    if (key(l) >= pth) {
      mine += exp((l - m) / temp);
      last = v;
    }
  }
  red[lid] = mine;
  redu[lid] = last;
  workgroupBarrier();
  var before = 0.0;
  var total = 0.0;
  var fallback = 0u;
  for (var i = 0u; i < NT; i++) {
    if (i < lid) { before += red[i]; }
    total += red[i];
    if (redu[i] != 0xffffffffu) { fallback = redu[i]; }
  }
  let r = f32(pcg(seed ^ pcg((index * 0x9e3779b9u) ^ pcg(draw + 0x632be5abu))) >> 8u) / 16777216.0;
  let u = r * total;
  let dst = next_of(b);
  if (lid == 0u) { tokens[dst] = fallback; }
  workgroupBarrier();
  if (mine > 0.0 && u >= before && u < before + mine) {
    var c = before;
    for (var v = v0; v < v1; v++) {
      let l = logits[row + v];
      if (key(l) >= pth) {
        c += exp((l - m) / temp);
        if (u < c || v == last) {
          tokens[dst] = v;
          break;
        }
      }
    }
  }
}
`;

/** The sampler's parameters (its `Params` struct): the vocabulary, the logits' row length and the settings. */
export interface SampleParams {
  /** Vocabulary size. */
  V: number;
  /** Length of a logits row (the vocabulary padded). */
  ldl: number;
  /** Top-k, 0: off. */
  topK?: number;
  /** Seed of the draws. */
  seed?: number;
  /** Temperature (per row in ragged steps). */
  temperature?: number;
  /** Top-p, 1: off. */
  topP?: number;
}

/**
 * The sampler's `Params` uniform.
 *
 * @param p The parameters.
 * @returns Its 32 bytes.
 */
export function encodeSampleParams(p: SampleParams): Uint32Array<ArrayBuffer> {
  return encodeParams(SAMPLE_PARAMS, {
    V: p.V,
    ldl: p.ldl,
    topk: p.topK ?? 0,
    seed: (p.seed ?? 0) >>> 0,
    temp: p.temperature ?? 0,
    topp: p.topP ?? 1,
  });
}

/** The fields of this kernel"s `Params` struct, in WGSL order (see `params.ts`). */
export const SAMPLE_PARAMS: ParamsLayout = {
  struct: "Params",
  fields: ["V", "ldl", "topk", "seed", "temp", "topp", "pad0", "pad1"],
  floats: ["temp", "topp"],
};
