import { STEP_WGSL } from "./step.ts";
import type { ParamsLayout } from "./params.ts";

/**
 * Vec4s of `x` in the CPU kernel that reads `x` from a uniform buffer (64 KiB, the WebGPU default
 * for `maxUniformBufferBindingSize`): products whose rows times K are at most 4 * this.
 */

export const MM_X_UNIFORM_VEC4S = 4096;

/** Weights per scale of the 8-bit format: a block of this many consecutive k of one column. */
export const Q8_BLOCK = 32;

/**
 * WGSL for 8-bit weights, stored as the others in blocks of 256 columns, four signed bytes to a
 * u32 along the columns: \`q8(u)\` turns such a u32 into four floats. The scales (16-bit floats, two
 * to a u32, as llama.cpp's Q8_0) follow the bytes in the same buffer: those of column block nb and
 * k-block kb (Q8_BLOCK k's) are the 128 words from \`q8Words() + (nb * q8Blocks() + kb) * 128\`.
 */
const Q8_WGSL = /* wgsl */ `
fn q8(u: u32) -> vec4f {
  return vec4f(vec4i(i32(u << 24u), i32(u << 16u), i32(u << 8u), i32(u)) >> vec4u(24u));
}
fn q8Blocks() -> u32 { return (p.K + ${Q8_BLOCK - 1}u) / ${Q8_BLOCK}u; }
fn q8Words() -> u32 { return ((p.N + 255u) / 256u) * p.K * 64u; }
`;

/** How a kernel stores its weights. */
type Storage = "f32" | "f16" | "q8";

/**
 * What both matrix kernels share: the params, the bindings (weights as `wType`; `x` from a storage
 * buffer, or with `xUniform` from a uniform one), GELU and the output step.
 */
function prelude(wType: string, xUniform = false, q8 = false): string {
  return /* wgsl */ `${STEP_WGSL}
struct Params {
  M: u32, K: u32, N: u32, pad3: u32,
  ldy: u32, y_off: u32, m_mode: u32, flags: u32,
  x_row0: u32, eps: f32, pad1: u32, pad2: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> st: Step;
${
    xUniform
      ? `@group(0) @binding(2) var<uniform> x: array<vec4f, ${MM_X_UNIFORM_VEC4S}>;`
      : "@group(0) @binding(2) var<storage, read> x: array<vec4f>;"
  }
@group(0) @binding(3) var<storage, read> w: array<${wType}>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<storage, read> lnw: array<vec4f>;
${q8 ? Q8_WGSL : ""}
fn gelu(v: f32) -> f32 {
  // 0.5 v (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3))), with a tanh that cannot overflow
  let u = clamp(0.7978845608028654 * (v + 0.044715 * v * v * v), -15.0, 15.0);
  let e = exp(2.0 * u);
  return 0.5 * v * (1.0 + (e - 1.0) / (e + 1.0));
}

// rows of x this dispatch multiplies: the step's rows, its batch rows or p.M, by p.m_mode
fn rowCount() -> u32 {
  if (p.m_mode == 0u) { return st.rows; }
  if (p.m_mode == 1u) { return st.batch; }
  return p.M;
}

// GELU of v (flag 2), then plus the old output (flag 4)
fn finish(v: f32, old: f32) -> f32 {
  var e = v;
  if ((p.flags & 2u) != 0u) { e = gelu(e); }
  if ((p.flags & 4u) != 0u) { e += old; }
  return e;
}

// y[m, y_off + col] (=|+=) act(acc + bias[col]), by p.flags
fn put(m: u32, col: u32, acc: f32) {
  var v = acc;
  if ((p.flags & 1u) != 0u) { v += bias[col]; }
  let o = m * p.ldy + p.y_off + col;
  var old = 0.0;
  if ((p.flags & 4u) != 0u) { old = y[o]; }
  y[o] = finish(v, old);
}
`;
}

function matmul(dtype: Storage): string {
  // one k-quad of the product: four weight rows (w0..w3 of the quad at index k4), then the TM rows of x
  const quad = (k: string, n: string) => `
      let i${n} = wb + ${k} * 256u;
      let w${n}0 = wload(i${n});
      let w${n}1 = wload(i${n} + 64u);
      let w${n}2 = wload(i${n} + 128u);
      let w${n}3 = wload(i${n} + 192u);`;
  const fmas = (k: string, n: string) => `
      {
        var g = vec4f(1.0);
        var sh = vec4f(0.0);
        if (ln) {
          g = lnw[${k}];
          sh = lnw[K4 + ${k}];
        }
        for (var r = 0u; r < TM; r++) {
          var xv = x[rowb[r] + ${k}];
          if (ln) { xv = (xv - vec4f(mean[r])) * rstd[r] * g + sh; }
          var a = acc[r];
          a = fma(vec4f(xv.x), w${n}0, a);
          a = fma(vec4f(xv.y), w${n}1, a);
          a = fma(vec4f(xv.z), w${n}2, a);
          a = fma(vec4f(xv.w), w${n}3, a);
          acc[r] = a;
        }
      }`;
  return /* wgsl */ `
// y[m, y_off + n] (=|+=) act(sum_k x[x_row0 + m, k] * w[k, n] + bias[n]) for m < M, n < N.
// The weight is stored input-major in blocks of 256 columns: element (k, n) sits at
// ((n / 256) * K + k) * 256 + n % 256, so invocations next to each other read consecutive
// columns (4 each) of one weight row.
// A workgroup computes TM rows x 4 WG columns; invocation (lx, ly) owns columns 4lx..4lx+3 of
// its tile and the k-quads with index % KS == ly, U (4 or 1) quads per loop trip (their loads
// are in flight together); with KS > 1 the partial sums meet in workgroup memory, added in two
// levels of about sqrt(KS) each (two barriers), and the rows' outputs are spread over the k-slices.
// With flag 8 the rows of x are first layer-normalised (eps p.eps, biased variance, then scale
// and shift from lnw): each workgroup computes its rows' mean and variance in a prologue (sums
// over all its invocations, added in two levels the same way), so the LayerNorm before the
// attention and the feed-forward costs no dispatch of its own.
// binding 0 (uniform) p: shapes and flags (1 bias, 2 GELU, 4 add into y, 8 LayerNorm of x)
// binding 1 (uniform) st: the step (M is st.rows, st.batch or p.M, by p.m_mode)
// binding 2 (read) x: [*, K] f32, K a multiple of 4
// binding 3 (read) w: the blocked weight, ${
    { f32: "f32", f16: "halves packed two to a u32", q8: "signed bytes packed four to a u32, then the scales" }[dtype]
  }
// binding 4 (read) bias: [N] f32
// binding 5 (read_write) y: [M, ldy] f32
// binding 6 (read) lnw: LayerNorm scale then shift, [2K] f32 (read only with flag 8)
${prelude({ f32: "vec4f", f16: "vec2<u32>", q8: "u32" }[dtype], false, dtype === "q8")}
override TM: u32 = 8u;
override KS: u32 = 1u;
override WG: u32 = 64u;
override U: u32 = 4u; // k-quads in flight per loop trip: 4 (and the last up to 3 together), or 1

// LayerNorm sums, then partial products: TM * KS * WG <= 1024
var<workgroup> red: array<vec4f, 1024>;

fn wload(i: u32) -> vec4f {
  ${
    {
      f32: "return w[i];",
      f16: "let q = w[i];\n  return vec4f(unpack2x16float(q.x), unpack2x16float(q.y));",
      // i counts groups of 4 columns: block nb = i / (64 K), row k, group c4 of the block
      q8: `let bk = p.K * 64u;
  let nb = i / bk;
  let k = (i % bk) / 64u;
  let s = q8Words() + (nb * q8Blocks() + k / ${Q8_BLOCK}u) * 128u + (i % 64u) * 2u;
  return q8(w[i]) * vec4f(unpack2x16float(w[s]), unpack2x16float(w[s + 1u]));`,
    }[dtype]
  }
}

// chunk length for adding n values in two levels: about sqrt(n)
fn chunk(n: u32) -> u32 {
  return u32(ceil(sqrt(f32(n))));
}

// y[m, n0..n0 + 3] from the four sums, the bias and the old y (all read before any write)
fn put4(m: u32, n0: u32, acc: vec4f) {
  let row = m * p.ldy + p.y_off;
  var v = acc;
  var old = vec4f(0.0);
  for (var i = 0u; i < 4u; i++) {
    let col = min(n0 + i, p.N - 1u); // past N: a valid column, read but not written
    if ((p.flags & 1u) != 0u) { v[i] += bias[col]; }
    if ((p.flags & 4u) != 0u) { old[i] = y[row + col]; }
  }
  for (var i = 0u; i < 4u; i++) {
    if (n0 + i >= p.N) { break; }
    y[row + n0 + i] = finish(v[i], old[i]);
  }
}

@compute @workgroup_size(WG, KS)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let M = rowCount();
  let m0 = wg.y * TM;
  if (m0 >= M) { return; }
  let K4 = p.K / 4u;
  var rowb: array<u32, 8>;
  for (var r = 0u; r < TM; r++) { rowb[r] = (p.x_row0 + min(m0 + r, M - 1u)) * K4; }
  let gcol = wg.x * WG + lid.x; // column group: columns 4 gcol .. 4 gcol + 3
  let wb = (gcol / 64u) * p.K * 64u + gcol % 64u;
  let ln = (p.flags & 8u) != 0u;
  var mean: array<f32, 8>;
  var rstd: array<f32, 8>;
  if (ln) {
    // sum and sum of squares of x - x[0] per row (shifted, so that they do not cancel)
    let nt = WG * KS;
    let tid = lid.y * WG + lid.x;
    for (var r = 0u; r < TM; r++) {
      let shift = x[rowb[r]].x;
      var s = vec2f(0.0);
      for (var k4 = tid; k4 < K4; k4 += nt) {
        let v = x[rowb[r] + k4] - vec4f(shift);
        s += vec2f(v.x + v.y + v.z + v.w, dot(v, v));
      }
      red[r * nt + tid] = vec4f(s, shift, 0.0);
    }
    workgroupBarrier();
    // two levels: chunks of S sums each (one (row, chunk) per invocation), then the chunks
    let S = chunk(nt);
    let nch = (nt + S - 1u) / S;
    for (var task = tid; task < TM * nch; task += nt) {
      let r = task / nch;
      let i0 = r * nt + (task % nch) * S;
      var tot = red[i0];
      for (var i = i0 + 1u; i < min(i0 + S, (r + 1u) * nt); i++) { tot += vec4f(red[i].xy, 0.0, 0.0); }
      red[i0] = tot;
    }
    workgroupBarrier();
    for (var r = 0u; r < TM; r++) {
      var tot = red[r * nt];
      for (var c = 1u; c < nch; c++) { tot += vec4f(red[r * nt + c * S].xy, 0.0, 0.0); }
      let mu = tot.x / f32(p.K);
      mean[r] = tot.z + mu;
      rstd[r] = 1.0 / sqrt(max(tot.y / f32(p.K) - mu * mu, 0.0) + p.eps);
    }
    workgroupBarrier(); // red is reused for the partial sums
  }
  var acc: array<vec4f, 8>;
  var k4 = lid.y;
  if (U == 4u) {
    for (; k4 + 3u * KS < K4; k4 += 4u * KS) {
      let ka = k4;
      let kb = k4 + KS;
      let kc = k4 + 2u * KS;
      let kd = k4 + 3u * KS;${quad("ka", "a")}${quad("kb", "b")}${quad("kc", "c")}${quad("kd", "d")}${fmas("ka", "a")}${
    fmas("kb", "b")
  }${fmas("kc", "c")}${fmas("kd", "d")}
    }
    // the last zero to three k-quads: all loads first (indices clamped in range), sums only in range
    let ka = min(k4, K4 - 1u);
    let kb = min(k4 + KS, K4 - 1u);
    let kc = min(k4 + 2u * KS, K4 - 1u);${quad("ka", "a")}${quad("kb", "b")}${quad("kc", "c")}
    if (k4 < K4) {${fmas("ka", "a")}
    }
    if (k4 + KS < K4) {${fmas("kb", "b")}
    }
    if (k4 + 2u * KS < K4) {${fmas("kc", "c")}
    }
  } else {
    for (; k4 < K4; k4 += KS) {${quad("k4", "a")}${fmas("k4", "a")}
    }
  }
  let n0 = gcol * 4u;
  if (KS == 1u) {
    for (var r = 0u; r < TM; r++) {
      if (m0 + r >= M) { break; }
      put4(m0 + r, n0, acc[r]);
    }
    return;
  }
  // KS partial sums per (row, column group), added in two levels: chunks of S, then the chunks
  for (var r = 0u; r < TM; r++) { red[(lid.y * TM + r) * WG + lid.x] = acc[r]; }
  workgroupBarrier();
  let S = chunk(KS);
  let nch = (KS + S - 1u) / S;
  for (var task = lid.y; task < TM * nch; task += KS) {
    let r = task / nch;
    let j0 = (task % nch) * S;
    var tot = red[(j0 * TM + r) * WG + lid.x];
    for (var j = j0 + 1u; j < min(j0 + S, KS); j++) { tot += red[(j * TM + r) * WG + lid.x]; }
    red[(j0 * TM + r) * WG + lid.x] = tot;
  }
  workgroupBarrier();
  for (var r = lid.y; r < TM; r += KS) {
    if (m0 + r >= M) { break; }
    var tot = red[r * WG + lid.x];
    for (var c = 1u; c < nch; c++) { tot += red[(c * S * TM + r) * WG + lid.x]; }
    put4(m0 + r, n0, tot);
  }
}
`;
}

/**
 * The same product for CPU adapters (llvmpipe): each invocation owns `cols` consecutive columns of
 * one weight block and TM rows, with no k-slices, no workgroup memory and no LayerNorm. llvmpipe
 * loads every 32-bit word of a storage buffer lane by lane, so wide per-invocation loads (8 or 16
 * columns of a weight row) and fewer loads of x per weight are what make it faster there.
 */
function matmulWide(dtype: Storage, cols: number, xUniform = false): string {
  const f16 = dtype === "f16";
  const q8 = dtype === "q8";
  const perVec = { f32: 4, f16: 8, q8: 16 }[dtype]; // columns in one loaded vector
  const V = cols / perVec; // vectors per weight row per invocation
  const A = cols / 4; // vec4f accumulators per row
  const rowVecs = 256 / perVec; // vectors in one 256-column block row
  const unpack = (q: string, half: 0 | 1) =>
    f16 ? `vec4f(unpack2x16float(${q}.${half ? "z" : "x"}), unpack2x16float(${q}.${half ? "w" : "y"}))` : q;
  // one weight row (k = 4 k4 + j, its vectors from index `i`): load, unpack, then the TM rows' sums
  const kRow = (i: string, j: string, indent: string) => {
    const loads = Array.from({ length: V }, (_, v) => `let q${v} = w[${i} + ${v}u];`).join(" ");
    const us = Array.from(
      { length: A },
      (_, a) =>
        `let u${a} = ${
          q8 ? `q8(q${a >> 2}.${"xyzw"[a & 3]}) * sc[${a}]` : f16 ? unpack(`q${a >> 1}`, (a & 1) as 0 | 1) : `q${a}`
        };`,
    ).join(" ");
    const fmas = Array.from({ length: A }, (_, a) => `acc[r * ${A}u + ${a}u] = fma(s, u${a}, acc[r * ${A}u + ${a}u]);`)
      .join(`\n${indent}  `);
    return `${indent}${loads}
${indent}${us}
${indent}for (var r = 0u; r < TM; r++) {
${indent}  let s = vec4f(xs[r][${j}]);
${indent}  ${fmas}
${indent}}`;
  };
  const unrolled = [0, 1, 2, 3].map((j) => `      {\n${kRow(`i + ${j * rowVecs}u`, `${j}`, "        ")}\n      }`)
    .join("\n");
  return /* wgsl */ `
// y[m, y_off + n] (=|+=) act(sum_k x[x_row0 + m, k] * w[k, n] + bias[n]), like the matmul kernel
// (same bindings and params, flags 1 bias, 2 GELU, 4 add), for CPU adapters: invocation g owns
// columns ${cols} g .. ${cols} g + ${cols - 1} (one block holds 256 / ${cols} invocations' columns) and TM rows.
// UNROLL 4 writes out the four weight rows of a k-quad (one-row products: fastest); UNROLL 1 walks
// them in a loop, a body small enough that llvmpipe compiles it about 3x faster and that runs
// faster with several rows (fewer values live at once).
${prelude(f16 || q8 ? "vec4<u32>" : "vec4f", xUniform, q8)}
override TM: u32 = 8u; // rows per workgroup, at most ${MM_WIDE_ROWS}
override WG: u32 = 16u;
override UNROLL: u32 = 1u; // 4 or 1

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let M = rowCount();
  let m0 = wg.y * TM;
  if (m0 >= M) { return; }
  let K4 = p.K / 4u;
  var rowb: array<u32, ${MM_WIDE_ROWS}>;
  for (var r = 0u; r < TM; r++) { rowb[r] = (p.x_row0 + min(m0 + r, M - 1u)) * K4; }
  let g = wg.x * WG + lid.x;
  let wb = (g / ${256 / cols}u) * p.K * ${rowVecs}u + (g % ${256 / cols}u) * ${V}u;
  var acc: array<vec4f, ${MM_WIDE_ROWS * A}>;
  var xs: array<vec4f, ${MM_WIDE_ROWS}>;${
    q8
      ? `
  // this invocation's ${cols} scales of the current k-block (halves, eight to a vec4<u32>: a block's 256 in 32)
  var sc: array<vec4f, ${A}>;
  let sb = q8Words() / 4u + (g / ${256 / cols}u) * q8Blocks() * 32u + (g % ${256 / cols}u) * ${A / 2}u;`
      : ""
  }
  for (var k4 = 0u; k4 < K4; k4++) {
    for (var r = 0u; r < TM; r++) { xs[r] = x[rowb[r] + k4]; }${
    q8
      ? `
    if ((k4 & ${Q8_BLOCK / 4 - 1}u) == 0u) {
      for (var v = 0u; v < ${A / 2}u; v++) {
        let h = w[sb + (k4 / ${Q8_BLOCK / 4}u) * 32u + v];
        sc[2u * v] = vec4f(unpack2x16float(h.x), unpack2x16float(h.y));
        sc[2u * v + 1u] = vec4f(unpack2x16float(h.z), unpack2x16float(h.w));
      }
    }`
      : ""
  }
    let i = wb + k4 * ${4 * rowVecs}u;
    if (UNROLL == 4u) {
${unrolled}
    } else {
      for (var j = 0u; j < 4u; j++) {
        let ij = i + j * ${rowVecs}u;
${kRow("ij", "j", "        ")}
      }
    }
  }
  let n0 = g * ${cols}u;
  for (var r = 0u; r < TM; r++) {
    let m = m0 + r;
    if (m >= M) { break; }
    for (var a = 0u; a < ${A}u; a++) {
      for (var c = 0u; c < 4u; c++) {
        let col = n0 + a * 4u + c;
        if (col >= p.N) { break; }
        put(m, col, acc[r * ${A}u + a][c]);
      }
    }
  }
}
`;
}

/**
 * Most rows per workgroup of the CPU matrix kernels: more rows load each weight fewer times. With
 * the k-quad's rows walked in a loop (UNROLL 1), 11 rows ran fastest per row on llvmpipe, and 12
 * ran 4-5x slower (most likely the row loop is then no longer unrolled).
 */
export const MM_WIDE_ROWS = 11;
/** Columns per invocation of the CPU matrix kernels (f32, f16). */
export const MM_WIDE_COLS = { f32: 16, f16: 16, q8: 16 } as const;
/** The matrix product for CPU adapters, float32 weights ({@linkcode MM_WIDE_COLS} columns per invocation). */
export const MATMUL_WIDE_WGSL: string = matmulWide("f32", MM_WIDE_COLS.f32);
/** The matrix product for CPU adapters, 16-bit weights. */
export const MATMUL_WIDE_F16_WGSL: string = matmulWide("f16", MM_WIDE_COLS.f16);
/** The matrix product for CPU adapters, 8-bit weights (a scale per 32 k of each column). */
export const MATMUL_WIDE_Q8_WGSL: string = matmulWide("q8", MM_WIDE_COLS.q8);
/**
 * {@linkcode MATMUL_WIDE_WGSL} with `x` (binding 2) read from a uniform buffer of
 * {@linkcode MM_X_UNIFORM_VEC4S} vec4s, for products whose rows fit it: llvmpipe loads a storage buffer
 * lane by lane with a bounds check per word, and a uniform buffer with a branch-free gather, so `x`
 * costs fewer instructions (`deno run -A bench/cpu_load_paths.ts`). The sums are the same.
 */
export const MATMUL_WIDE_XU_WGSL: string = matmulWide("f32", MM_WIDE_COLS.f32, true);
/** {@linkcode MATMUL_WIDE_F16_WGSL} with `x` from a uniform buffer (see {@linkcode MATMUL_WIDE_XU_WGSL}). */
export const MATMUL_WIDE_XU_F16_WGSL: string = matmulWide("f16", MM_WIDE_COLS.f16, true);
/** {@linkcode MATMUL_WIDE_Q8_WGSL} with `x` from a uniform buffer. */
export const MATMUL_WIDE_XU_Q8_WGSL: string = matmulWide("q8", MM_WIDE_COLS.q8, true);

/** Linear layer (matrix product, bias, GELU, residual add), float32 weights. */
export const MATMUL_WGSL: string = matmul("f32");
/** Linear layer with 16-bit weights packed two to a u32 (`unpack2x16float`, no `shader-f16`). */
export const MATMUL_F16_WGSL: string = matmul("f16");
/** Linear layer with 8-bit weights and a 16-bit float scale per 32 k of each column. */
export const MATMUL_Q8_WGSL: string = matmul("q8");

/** Columns of one weight block (and of one workgroup's output). */
export const MM_BLOCK = 256;
/** Flag: add `bias[n]`. */
export const MM_BIAS = 1;
/** Flag: apply GELU (tanh approximation). */
export const MM_GELU = 2;
/** Flag: add the result into `y` (residual connection). */
export const MM_ADD = 4;
/** Flag: layer-normalise the rows of `x` first (scale and shift from binding 6). */
export const MM_LN = 8;

/** The fields of this kernel"s `Params` struct, in WGSL order (see `params.ts`). */
export const MATMUL_PARAMS: ParamsLayout = {
  struct: "Params",
  fields: ["M", "K", "N", "pad3", "ldy", "y_off", "m_mode", "flags", "x_row0", "eps", "pad1", "pad2"],
  floats: ["eps"],
};
