/**
 * Matrix-matrix products for training: register-tiled, each invocation an 8 x 4 block of outputs
 * (8 rows, 4 columns) from vec4 loads, 8 x 8 invocations a workgroup (a 64 x 32 tile), no
 * workgroup memory and no barriers. On llvmpipe 8 x 4 ran 1.1-1.4x faster than 4 x 4 and 4 x 8
 * (`bench/results/2026-12-06-cpu-matmul-tiles.txt`); workgroup-memory tiles were measured slower
 * there before.
 *
 * Three layouts, as a linear layer's forward and backward need them (`W` is PyTorch's `[out, in]`):
 *
 * | kernel | computes | used for |
 * | --- | --- | --- |
 * | `mm_nt` | `C[m, n] = sum_k A[m, k] B[n, k] (+ bias[n])` | `y = x W^T + b` |
 * | `mm_nn` | `C[m, n] = sum_k A[m, k] B[k, n]` | `dx = dy W` |
 * | `mm_tn` | `C[m, n] = sum_k A[k, m] B[k, n]` | `dW = dy^T x` |
 *
 * Every matrix has a row stride and a start (in elements, multiples of 4, as are the strides).
 * Flags: {@linkcode MMT_BIAS} adds `bias[bias0 + n]`; {@linkcode MMT_ACC} adds the result to `C`
 * (a residual stream, or gradients that accumulate). Rows and columns past `M` and `N` are not
 * written. `mm_nt` needs `K % 4 == 0`; `mm_nn` reads `B` rows up to `K` rounded up to 4 (clamped to
 * the last row: `A` must hold zeros there) and needs `N % 4 == 0`; `mm_tn` needs `N % 4 == 0` and `A`
 * rows readable up to `M` rounded up to 4. Dispatch `(ceil(N / 32), ceil(M / 64))`.
 *
 * @module
 */

/** Flag: add the bias. */
export const MMT_BIAS = 1;
/** Flag: add the product to `C` instead of writing it. */
export const MMT_ACC = 2;
/** Output columns of one workgroup. */
export const MMT_TILE = 32;
/** Output rows of one workgroup. */
export const MMT_TILE_ROWS = 64;

const HEAD = /* wgsl */ `
struct P { M: u32, N: u32, K: u32, lda: u32, ldb: u32, ldc: u32, a0: u32, b0: u32, c0: u32, flags: u32, bias0: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<vec4f>;
@group(0) @binding(2) var<storage, read> b: array<vec4f>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

fn store(m: u32, n: u32, v: vec4f) {
  if (m >= p.M) { return; }
  for (var j = 0u; j < 4u; j++) {
    if (n + j < p.N) {
      var r = v[j];
      if ((p.flags & ${MMT_BIAS}u) != 0u) { r = r + bias[p.bias0 + n + j]; }
      let i = p.c0 + m * p.ldc + n + j;
      if ((p.flags & ${MMT_ACC}u) != 0u) { r = c[i] + r; }
      c[i] = r;
    }
  }
}
`;

const ENTRY = /* wgsl */ `
@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let m0 = wg.y * 64u + lid.y * 8u;
  let n0 = wg.x * 32u + lid.x * 4u;
  var acc: array<vec4f, 8>;`;

const STORE = /* wgsl */ `
  for (var i = 0u; i < 8u; i++) { store(m0 + i, n0, acc[i]); }
}`;

/** `C = A B^T`: rows of both read along k. */
export const MM_NT_WGSL = /* wgsl */ `${HEAD}${ENTRY}
  var ra: array<u32, 8>;
  var rb: array<u32, 4>;
  for (var i = 0u; i < 8u; i++) { ra[i] = (p.a0 + min(m0 + i, p.M - 1u) * p.lda) / 4u; }
  for (var j = 0u; j < 4u; j++) { rb[j] = (p.b0 + min(n0 + j, p.N - 1u) * p.ldb) / 4u; }
  for (var k = 0u; k < p.K / 4u; k++) {
    let b0 = b[rb[0] + k];
    let b1 = b[rb[1] + k];
    let b2 = b[rb[2] + k];
    let b3 = b[rb[3] + k];
    for (var i = 0u; i < 8u; i++) {
      let x = a[ra[i] + k];
      acc[i] = acc[i] + vec4f(dot(x, b0), dot(x, b1), dot(x, b2), dot(x, b3));
    }
  }${STORE}`;

/** `C = A B`: rows of `A` along k, rows of `B` along n. */
export const MM_NN_WGSL = /* wgsl */ `${HEAD}${ENTRY}
  var ra: array<u32, 8>;
  for (var i = 0u; i < 8u; i++) { ra[i] = (p.a0 + min(m0 + i, p.M - 1u) * p.lda) / 4u; }
  let nb = min(n0, p.N - 4u);
  for (var k = 0u; k < (p.K + 3u) / 4u; k++) {
    let kk = k * 4u;
    let b0 = b[(p.b0 + min(kk, p.K - 1u) * p.ldb + nb) / 4u];
    let b1 = b[(p.b0 + min(kk + 1u, p.K - 1u) * p.ldb + nb) / 4u];
    let b2 = b[(p.b0 + min(kk + 2u, p.K - 1u) * p.ldb + nb) / 4u];
    let b3 = b[(p.b0 + min(kk + 3u, p.K - 1u) * p.ldb + nb) / 4u];
    for (var i = 0u; i < 8u; i++) {
      let x = a[ra[i] + k];
      acc[i] = acc[i] + x.x * b0 + x.y * b1 + x.z * b2 + x.w * b3;
    }
  }${STORE}`;

/** `C = A^T B`: a sum over k of outer products of rows of `A` and `B`. */
export const MM_TN_WGSL = /* wgsl */ `${HEAD}${ENTRY}
  // rows m0 .. m0 + 7 as two vec4s of A's row k, each kept within the rows (M rounded up to 4)
  let last = ((p.M + 3u) / 4u) * 4u - 4u;
  let ma = min(m0, last);
  let mb = min(m0 + 4u, last);
  let nb = min(n0, p.N - 4u);
  for (var k = 0u; k < p.K; k++) {
    let x = a[(p.a0 + k * p.lda + ma) / 4u];
    let z = a[(p.a0 + k * p.lda + mb) / 4u];
    let y = b[(p.b0 + k * p.ldb + nb) / 4u];
    acc[0] = acc[0] + x.x * y;
    acc[1] = acc[1] + x.y * y;
    acc[2] = acc[2] + x.z * y;
    acc[3] = acc[3] + x.w * y;
    acc[4] = acc[4] + z.x * y;
    acc[5] = acc[5] + z.y * y;
    acc[6] = acc[6] + z.z * y;
    acc[7] = acc[7] + z.w * y;
  }${STORE}`;
