/**
 * Training's kernels besides the matrix products: the forward ops that keep what backward needs,
 * and the backward of every op (llm.c's `*_backward`, in WGSL). Float gradients are never added
 * atomically: every sum has one invocation that owns it, so a step's gradients are the same on
 * every run. Parameters are in PyTorch's layout; activations are `[B*T, width]` rows.
 *
 * Each kernel takes a uniform `P` of unsigned integers and floats named below, then its buffers.
 *
 * @module
 */

import { REDUCE } from "./loss.ts";

const GELU = /* wgsl */ `
const S2PI = 0.7978845608028654;
fn tanh_safe(u: f32) -> f32 {
  let e = exp(2.0 * clamp(u, -15.0, 15.0));
  return (e - 1.0) / (e + 1.0);
}`;

/**
 * The entry point of an elementwise kernel over `p.n` values, `i` its index: workgroups of 256 in a
 * 2-D grid (at most 65,535 a side); the kernel's statements follow, then a closing brace.
 */
export const ELEMENTWISE = /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gidx: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let i = gidx.y * nw.x * 256u + gidx.x;
  if (i >= p.n) { return; }`;

/**
 * Token + position embedding for the ids in one vocabulary chunk: `x[r] = wte[id - v0] + wpe[r % T]`
 * for every row `r` whose id is in `[v0, v0 + rows)`. P: rows, T, C, v0, vrows. Bindings: P, ids (u32),
 * wte chunk, wpe, x. Dispatch `(ceil(C / 64), rows)`.
 */
export const EMBED_FWD_WGSL = /* wgsl */ `
struct P { rows: u32, T: u32, C: u32, v0: u32, vrows: u32, p0: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> wte: array<f32>;
@group(0) @binding(3) var<storage, read> wpe: array<f32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let c = g.x;
  let r = g.y;
  if (c >= p.C || r >= p.rows) { return; }
  let id = ids[r];
  if (id < p.v0 || id >= p.v0 + p.vrows) { return; }
  x[r * p.C + c] = wte[(id - p.v0) * p.C + c] + wpe[(r % p.T) * p.C + c];
}`;

/**
 * The token embedding's gradient for one chunk: for each distinct id `u` of the batch in the chunk,
 * `dwte[id - v0] += sum of dx over the rows holding it` (rows listed in `pos[start[u] .. start[u+1]]`).
 * P: C, count (distinct ids), v0. Bindings: P, uniq ids, start, pos, dx, dwte. Dispatch `(ceil(C / 64), count)`.
 */
export const EMBED_BWD_WGSL = /* wgsl */ `
struct P { C: u32, count: u32, v0: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> uniq: array<u32>;
@group(0) @binding(2) var<storage, read> start: array<u32>;
@group(0) @binding(3) var<storage, read> pos: array<u32>;
@group(0) @binding(4) var<storage, read> dx: array<f32>;
@group(0) @binding(5) var<storage, read_write> dwte: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let c = g.x;
  let u = g.y;
  if (c >= p.C || u >= p.count) { return; }
  var s = 0.0;
  for (var i = start[u]; i < start[u + 1u]; i++) { s = s + dx[pos[i] * p.C + c]; }
  let o = (uniq[u] - p.v0) * p.C + c;
  dwte[o] = dwte[o] + s;
}`;

/**
 * The position embedding's gradient: `dwpe[t, c] += sum over b of dx[b * T + t, c]`.
 * P: B, T, C. Bindings: P, dx, dwpe. Dispatch `(ceil(C / 64), T)`.
 */
export const POS_BWD_WGSL = /* wgsl */ `
struct P { B: u32, T: u32, C: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> dx: array<f32>;
@group(0) @binding(2) var<storage, read_write> dwpe: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let c = g.x;
  let t = g.y;
  if (c >= p.C || t >= p.T) { return; }
  var s = 0.0;
  for (var b = 0u; b < p.B; b++) { s = s + dx[(b * p.T + t) * p.C + c]; }
  dwpe[t * p.C + c] = dwpe[t * p.C + c] + s;
}`;

/**
 * The book's LayerNorm, keeping each row's mean and `sqrt(var + eps)` for backward:
 * `y = scale * (x - mean) / sqrt(var + eps) + shift` (biased variance). P: rows, C, eps.
 * Bindings: P, x, w (`scale` then `shift`), y, stats (`[rows, 2]`). Dispatch `(ceil(rows / 64))`.
 */
export const LN_FWD_WGSL = /* wgsl */ `
struct P { rows: u32, C: u32, eps: f32, p1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let r = g.x;
  if (r >= p.rows) { return; }
  let o = r * p.C;
  var s = 0.0;
  for (var i = 0u; i < p.C; i++) { s = s + x[o + i]; }
  let mean = s / f32(p.C);
  var v = 0.0;
  for (var i = 0u; i < p.C; i++) { let d = x[o + i] - mean; v = v + d * d; }
  let sd = sqrt(v / f32(p.C) + p.eps);
  for (var i = 0u; i < p.C; i++) { y[o + i] = w[i] * ((x[o + i] - mean) / sd) + w[p.C + i]; }
  stats[2u * r] = mean;
  stats[2u * r + 1u] = sd;
}`;

/**
 * LayerNorm's input gradient, added to `dx`: with `n = (x - mean) / sd` and `g = dy * scale`,
 * `dx += (g - mean(g) - n * mean(g * n)) / sd`. P: rows, C. Bindings: P, x, w (`scale` first), stats, dy, dx.
 * Dispatch `(ceil(rows / 64))`.
 */
export const LN_BWD_X_WGSL = /* wgsl */ `
struct P { rows: u32, C: u32, p0: u32, p1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let r = g.x;
  if (r >= p.rows) { return; }
  let o = r * p.C;
  let mean = stats[2u * r];
  let sd = stats[2u * r + 1u];
  var sg = 0.0;
  var sgn = 0.0;
  for (var i = 0u; i < p.C; i++) {
    let gi = dy[o + i] * w[i];
    sg = sg + gi;
    sgn = sgn + gi * ((x[o + i] - mean) / sd);
  }
  let mg = sg / f32(p.C);
  let mgn = sgn / f32(p.C);
  for (var i = 0u; i < p.C; i++) {
    let n = (x[o + i] - mean) / sd;
    dx[o + i] = dx[o + i] + (dy[o + i] * w[i] - mg - n * mgn) / sd;
  }
}`;

/**
 * LayerNorm's parameter gradients: `dscale[i] += sum over rows of dy * n`, `dshift[i] += sum of dy`.
 * P: rows, C. Bindings: P, x, stats, dy, dw (`dscale` then `dshift`). Dispatch `(ceil(C / 64))`.
 */
export const LN_BWD_W_WGSL = /* wgsl */ `
struct P { rows: u32, C: u32, p0: u32, p1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dw: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  if (i >= p.C) { return; }
  var sw = 0.0;
  var sb = 0.0;
  for (var r = 0u; r < p.rows; r++) {
    let d = dy[r * p.C + i];
    sw = sw + d * ((x[r * p.C + i] - stats[2u * r]) / stats[2u * r + 1u]);
    sb = sb + d;
  }
  dw[i] = dw[i] + sw;
  dw[p.C + i] = dw[p.C + i] + sb;
}`;

/**
 * GELU (tanh approximation), `y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`. P: n.
 * Bindings: P, x, y. Dispatch `(ceil(n / 256))` in rows of at most 65,535 groups (`y` of the grid).
 */
export const GELU_FWD_WGSL = /* wgsl */ `
struct P { n: u32, p0: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${GELU}
${ELEMENTWISE}
  let v = x[i];
  y[i] = 0.5 * v * (1.0 + tanh_safe(S2PI * (v + 0.044715 * v * v * v)));
}`;

/**
 * GELU's backward in place: `d = d * gelu'(x)`. P: n. Bindings: P, x (the GELU's input), d.
 * Dispatch as {@linkcode GELU_FWD_WGSL}.
 */
export const GELU_BWD_WGSL = /* wgsl */ `
struct P { n: u32, p0: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> d: array<f32>;
${GELU}
${ELEMENTWISE}
  let v = x[i];
  let t = tanh_safe(S2PI * (v + 0.044715 * v * v * v));
  let dt = (1.0 - t * t) * S2PI * (1.0 + 3.0 * 0.044715 * v * v);
  d[i] = d[i] * (0.5 * (1.0 + t) + 0.5 * v * dt);
}`;

/**
 * Dropout's mask, drawn from a hash of a seed and the element's index (the same mask in forward
 * and backward, nothing stored): an element is kept with probability `1 - rate` and then scaled
 * by `1 / (1 - rate)`. PCG's output hash.
 */
const DROP = /* wgsl */ `
fn pcg(x: u32) -> u32 {
  let s = x * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}
fn keepScale(seed: u32, i: u32, rate: f32) -> f32 {
  if (rate <= 0.0) { return 1.0; }
  let u = f32(pcg(seed ^ pcg(i)) >> 8u) * (1.0 / 16777216.0);
  return select(0.0, 1.0 / (1.0 - rate), u >= rate);
}`;

/**
 * The attention kernels' params: batch, tokens, heads, head size, width, the dropout seed and
 * rate (of the attention weights), and sqrt(head size).
 */
const ATT_HEAD = /* wgsl */ `
struct P { B: u32, T: u32, H: u32, hd: u32, C: u32, seed: u32, rate: f32, sq: f32 }
@group(0) @binding(0) var<uniform> p: P;
${DROP}`;

/** Index of head `h`'s element `i` of row `(b, t)` of the `[B*T, 3C]` q|k|v buffer (`part` 0, 1, 2). */
const QKV_AT = /* wgsl */ `
fn at(part: u32, b: u32, t: u32, h: u32) -> u32 { return (b * p.T + t) * 3u * p.C + part * p.C + h * p.hd; }`;

/**
 * Causal attention that keeps its weights: for query `(b, h, t)`, `att[t2] = softmax(q.k[t2] / sqrt(hd))`
 * over `t2 <= t` (in `att`, `[B, H, T, T]`), `out[b, t, h] = sum dropout(att)[t2] v[t2]`. Bindings: P, qkv, att, out.
 * Dispatch `(ceil(T / 64), B * H)`.
 */
export const ATT_FWD_WGSL = /* wgsl */ `${ATT_HEAD}
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> att: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${QKV_AT}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let t = g.x;
  let b = g.y / p.H;
  let h = g.y % p.H;
  if (t >= p.T) { return; }
  let row = ((b * p.H + h) * p.T + t) * p.T;
  let q = at(0u, b, t, h);
  var mx = -3.4e38;
  for (var t2 = 0u; t2 <= t; t2++) {
    let k = at(1u, b, t2, h);
    var s = 0.0;
    for (var i = 0u; i < p.hd; i++) { s = s + qkv[q + i] * qkv[k + i]; }
    s = s / p.sq;
    att[row + t2] = s;
    mx = max(mx, s);
  }
  var sum = 0.0;
  for (var t2 = 0u; t2 <= t; t2++) {
    let e = exp(att[row + t2] - mx);
    att[row + t2] = e;
    sum = sum + e;
  }
  for (var t2 = 0u; t2 <= t; t2++) { att[row + t2] = att[row + t2] / sum; }
  for (var t2 = t + 1u; t2 < p.T; t2++) { att[row + t2] = 0.0; }
  let o = (b * p.T + t) * p.C + h * p.hd;
  for (var i = 0u; i < p.hd; i++) {
    var s = 0.0;
    for (var t2 = 0u; t2 <= t; t2++) {
      s = s + att[row + t2] * keepScale(p.seed, row + t2, p.rate) * qkv[at(2u, b, t2, h) + i];
    }
    out[o + i] = s;
  }
}`;

/**
 * Attention backward, first part: the scores' gradient for query `(b, h, t)`,
 * `ds[t2] = att[t2] (datt[t2] - sum att datt) / sqrt(hd)` with `datt[t2] = mask[t2] dout . v[t2]`, into `ds`
 * (`[B, H, T, T]`, zero above the diagonal). Bindings: P, qkv, att, dout, ds. Dispatch as the forward.
 */
export const ATT_BWD_SCORES_WGSL = /* wgsl */ `${ATT_HEAD}
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> att: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> ds: array<f32>;
${QKV_AT}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let t = g.x;
  let b = g.y / p.H;
  let h = g.y % p.H;
  if (t >= p.T) { return; }
  let row = ((b * p.H + h) * p.T + t) * p.T;
  let o = (b * p.T + t) * p.C + h * p.hd;
  var dot_ad = 0.0;
  for (var t2 = 0u; t2 <= t; t2++) {
    let v = at(2u, b, t2, h);
    var s = 0.0;
    for (var i = 0u; i < p.hd; i++) { s = s + dout[o + i] * qkv[v + i]; }
    s = s * keepScale(p.seed, row + t2, p.rate);
    ds[row + t2] = s;
    dot_ad = dot_ad + att[row + t2] * s;
  }
  for (var t2 = 0u; t2 <= t; t2++) { ds[row + t2] = att[row + t2] * (ds[row + t2] - dot_ad) / p.sq; }
  for (var t2 = t + 1u; t2 < p.T; t2++) { ds[row + t2] = 0.0; }
}`;

/**
 * Attention backward, second part: for token `(b, h, t)` and element `i`,
 * `dq[t] = sum over t2 <= t of ds[t, t2] k[t2]`, `dk[t] = sum over t3 >= t of ds[t3, t] q[t3]`,
 * `dv[t] = sum over t3 >= t of dropout(att)[t3, t] dout[t3]`, written into the `[B*T, 3C]` gradient `dqkv`.
 * Bindings: P, qkv, att, dout, ds, dqkv. Dispatch `(ceil(hd / 16), T, B * H)` with workgroups of 16.
 */
export const ATT_BWD_QKV_WGSL = /* wgsl */ `${ATT_HEAD}
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> att: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read> ds: array<f32>;
@group(0) @binding(5) var<storage, read_write> dqkv: array<f32>;
${QKV_AT}
@compute @workgroup_size(16)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  let t = g.y;
  let b = g.z / p.H;
  let h = g.z % p.H;
  if (i >= p.hd || t >= p.T) { return; }
  let base = (b * p.H + h) * p.T * p.T;
  var sdq = 0.0;
  for (var t2 = 0u; t2 <= t; t2++) { sdq = sdq + ds[base + t * p.T + t2] * qkv[at(1u, b, t2, h) + i]; }
  var sk = 0.0;
  var sv = 0.0;
  for (var t3 = t; t3 < p.T; t3++) {
    sk = sk + ds[base + t3 * p.T + t] * qkv[at(0u, b, t3, h) + i];
    let w = att[base + t3 * p.T + t] * keepScale(p.seed, base + t3 * p.T + t, p.rate);
    sv = sv + w * dout[(b * p.T + t3) * p.C + h * p.hd + i];
  }
  dqkv[at(0u, b, t, h) + i] = sdq;
  dqkv[at(1u, b, t, h) + i] = sk;
  dqkv[at(2u, b, t, h) + i] = sv;
}`;

/**
 * Cross-entropy of rows of logits against targets, PyTorch's `cross_entropy`: each row's loss
 * `log(sum exp(x - max)) + max - x[target]` into `loss[r0 + r]`; with `grad` 1, the logits are
 * replaced by their gradient `(softmax(x) - onehot(target)) * scale` (columns `V .. ldl` zeroed).
 * P: V, ldl, rows, r0, grad, scale. Bindings: P, targets (u32), logits, loss. Dispatch `(rows)`.
 */
export const CE_WGSL = /* wgsl */ `
struct P { V: u32, ldl: u32, rows: u32, r0: u32, grad: u32, p0: u32, p1: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> targets: array<u32>;
@group(0) @binding(2) var<storage, read_write> logits: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
${REDUCE}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = wg.x;
  let o = r * p.ldl;
  var m = -3.4e38;
  for (var v = lid; v < p.V; v += 64u) { m = max(m, logits[o + v]); }
  m = maxAll(m, lid);
  var s = 0.0;
  for (var v = lid; v < p.V; v += 64u) { s = s + exp(logits[o + v] - m); }
  s = sumAll(s, lid);
  let tgt = targets[p.r0 + r];
  if (lid == 0u) { loss[p.r0 + r] = log(s) + m - logits[o + tgt]; }
  if (p.grad == 0u) { return; }
  workgroupBarrier();
  for (var v = lid; v < p.ldl; v += 64u) {
    var d = 0.0;
    if (v < p.V) {
      d = exp(logits[o + v] - m) / s;
      if (v == tgt) { d = d - 1.0; }
    }
    logits[o + v] = d * p.scale;
  }
}`;

/**
 * Column sums added to a bias gradient: `db[n] += sum over rows of dy[r, n]`. P: rows, N.
 * Bindings: P, dy, db. Dispatch `(ceil(N / 64))`.
 */
export const COLSUM_WGSL = /* wgsl */ `
struct P { rows: u32, N: u32, p0: u32, p1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> db: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  let n = g.x;
  if (n >= p.N) { return; }
  var s = 0.0;
  for (var r = 0u; r < p.rows; r++) { s = s + dy[r * p.N + n]; }
  db[n] = db[n] + s;
}`;

/**
 * Copies `n` floats (`mode` 0: `y = x`), fills `y` with zeros (1), or adds (2: `y += x`).
 * P: n, mode. Bindings: P, x, y. Dispatch as {@linkcode GELU_FWD_WGSL}.
 */
export const COPY_WGSL = /* wgsl */ `
struct P { n: u32, mode: u32, p0: u32, p1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${ELEMENTWISE}
  if (p.mode == 1u) { y[i] = 0.0; } else if (p.mode == 2u) { y[i] = y[i] + x[i]; } else { y[i] = x[i]; }
}`;

/**
 * Dropout in place: `y[i] *= mask(seed, i)` (0, or `1 / (1 - rate)` with probability `1 - rate`); the
 * same call on a gradient is dropout's backward. P: n, seed, rate. Bindings: P, y. Dispatch as
 * {@linkcode GELU_FWD_WGSL}.
 */
export const DROPOUT_WGSL = /* wgsl */ `
struct P { n: u32, seed: u32, rate: f32, p0: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
${DROP}
${ELEMENTWISE}
  y[i] = y[i] * keepScale(p.seed, i, p.rate);
}`;
