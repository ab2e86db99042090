// Every kernel on its own against the plain CPU reference, on odd shapes.
import assert from "node:assert/strict";
import {
  ARGMAX_FINAL,
  ARGMAX_PART,
  ARGMAX_PARTS,
  ARGMAX_SERIAL,
  ATTENTION,
  ATTENTION_BLOCK,
  ATTENTION_SERIAL,
  EMBEDDING,
  EMBEDDING_F16,
  EMBEDDING_Q8,
  LAYER_NORM,
  LAYER_NORM_SERIAL,
  MATMUL,
  MATMUL_F16,
  MATMUL_Q8,
  MATMUL_WIDE,
  MATMUL_WIDE_F16,
  MATMUL_WIDE_Q8,
  MATMUL_WIDE_XU,
  MATMUL_WIDE_XU_F16,
  MATMUL_WIDE_XU_Q8,
  MM_X_UNIFORM_VEC4S,
} from "../kernels/mod.ts";
import { MM_ADD, MM_BIAS, MM_GELU, MM_LN, MM_WIDE_COLS, MM_WIDE_ROWS } from "../kernels/matmul.ts";
import { getGpu } from "../src/gpu/device.ts";
import { chooseBackend, KSPLIT_ROWS } from "../src/engine/backend.ts";
import { matmulConstants } from "../src/engine/_kernels.ts";
import type { KernelSpec } from "../src/gpu/pipelines.ts";
import { createMatrix } from "../src/gpu/weights.ts";
import { attentionRef, geluRef, layerNormRef, linearRef } from "../src/engine/reference.ts";
import { TorchGenerator } from "../src/weights/torch_random.ts";
import { assertClose, randomArray, toHalf, toQ8 } from "./_helpers.ts";
import { f32bits, runKernel, stepWords } from "./_harness.ts";

const g = new TorchGenerator(7);

Deno.test("layer_norm kernels (with barriers; serial for CPU adapters) match the CPU reference (C = 37, 768; all rows and last rows only)", async () => {
  for (const spec of [LAYER_NORM, LAYER_NORM_SERIAL]) {
    for (const [rows, C] of [[3, 37], [1, 768], [5, 1]]) {
      const x = randomArray(g, rows * C, -3, 3);
      const w = randomArray(g, 2 * C, -1, 1);
      const eps = 1e-5;
      const [y] = await runKernel(
        spec,
        [
          { uniform: new Uint32Array([C, 0, f32bits(eps), 0]) },
          { uniform: stepWords({ B: 1, T: rows }) },
          x,
          w,
          new Float32Array(rows * C),
        ],
        [rows],
        [4],
      );
      const ref = layerNormRef(x, rows, C, w.subarray(0, C), w.subarray(C), eps);
      assertClose(y, ref, 1e-5, 1e-5, `${spec.name} ${rows}x${C}`);
    }
    // last_only: batch of 2 rows of T = 3, normalise token 2 of each
    const C = 20, T = 3, B = 2;
    const x = randomArray(g, B * T * C, -2, 2);
    const w = randomArray(g, 2 * C);
    const [y] = await runKernel(
      spec,
      [
        { uniform: new Uint32Array([C, 1, f32bits(1e-5), 0]) },
        { uniform: stepWords({ B, T }) },
        x,
        w,
        new Float32Array(B * C),
      ],
      [B],
      [4],
    );
    const lastRows = new Float32Array(B * C);
    for (let b = 0; b < B; b++) lastRows.set(x.subarray((b * T + T - 1) * C, (b * T + T) * C), b * C);
    assertClose(y, layerNormRef(lastRows, B, C, w.subarray(0, C), w.subarray(C)), 1e-5, 1e-5, `${spec.name} last_only`);
  }
});

async function matmulCase(
  M: number,
  K: number,
  N: number,
  flags: number,
  dt: boolean | "q8", // true: f16
  tm: number,
  ks = 1,
  wg = 64,
  wide = false,
  u = 1,
) {
  const { device } = await getGpu();
  const x = randomArray(g, M * K);
  let wt = randomArray(g, N * K); // PyTorch layout [N, K]
  const bias = randomArray(g, N);
  const y0 = randomArray(g, M * N);
  const lnw = randomArray(g, 2 * K, -1, 2);
  if (flags & MM_LN) { for (let i = 0; i < M * K; i++) x[i] = x[i] * 3 + 5; // a mean far from 0
   }
  const dtype = dt === "q8" ? "q8" : dt ? "f16" : "f32";
  const f16 = dt;
  const owned: GPUBuffer[] = [];
  const mat = createMatrix(device, "w", dtype, K, N, wt, false, (b) => owned.push(b));
  // the reference multiplies what the matrix stores
  if (dtype === "f16") wt = toHalf(wt);
  if (dtype === "q8") wt = toQ8(wt, K);
  const params = new Uint32Array([M, K, N, 0, N, 0, 2, flags, 0, f32bits(1e-5), 0, 0]);
  const cols = wide ? MM_WIDE_COLS[dtype] : 4;
  const [y] = await runKernel(
    wide
      ? { f32: MATMUL_WIDE, f16: MATMUL_WIDE_F16, q8: MATMUL_WIDE_Q8 }[dtype]
      : { f32: MATMUL, f16: MATMUL_F16, q8: MATMUL_Q8 }[dtype],
    [{ uniform: params }, { uniform: stepWords({ B: 1, T: M }) }, x, mat.buffer, bias, y0.slice(), lnw],
    [Math.ceil(N / (cols * wg)), Math.ceil(M / tm)],
    [5],
    wide ? { TM: tm, WG: wg, UNROLL: u } : { TM: tm, KS: ks, WG: wg, U: u },
  );
  const xin = flags & MM_LN ? layerNormRef(x, M, K, lnw.subarray(0, K), lnw.subarray(K), 1e-5) : x;
  let ref = linearRef(xin, M, K, wt, N, flags & MM_BIAS ? bias : undefined);
  if (flags & MM_GELU) ref = ref.map(geluRef);
  if (flags & MM_ADD) ref = ref.map((v, i) => v + y0[i]);
  for (const b of owned) b.destroy();
  assertClose(
    y,
    ref,
    2e-5 * Math.sqrt(K),
    1e-5,
    `matmul M=${M} K=${K} N=${N} flags=${flags} f16=${f16} TM=${tm} KS=${ks} WG=${wg} wide=${wide} U=${u}`,
  );
}

Deno.test("matmul kernel matches the CPU reference (odd N, several blocks, 1 to 9 rows, bias, GELU, residual)", async () => {
  await matmulCase(1, 12, 37, MM_BIAS, false, 1);
  await matmulCase(3, 20, 300, MM_BIAS | MM_GELU, false, 3);
  await matmulCase(9, 48, 257, MM_BIAS | MM_ADD, false, 5);
  await matmulCase(9, 48, 257, 0, false, 8);
  await matmulCase(2, 768, 5, MM_ADD, false, 2);
  await matmulCase(4, 64, 513, MM_BIAS, false, 4, 4);
});

Deno.test("matmul kernel with a fused LayerNorm matches LayerNorm then the reference product", async () => {
  await matmulCase(1, 768, 300, MM_LN | MM_BIAS, false, 1);
  await matmulCase(5, 48, 37, MM_LN | MM_BIAS | MM_GELU, false, 5, 3);
  await matmulCase(9, 20, 257, MM_LN, true, 8);
  await matmulCase(3, 256, 64, MM_LN | MM_ADD, false, 3, 1, 16);
  await matmulCase(1, 3072, 300, MM_LN | MM_BIAS, false, 1, 64, 4); // the GPU decode shape
  await matmulCase(8, 768, 37, MM_LN | MM_GELU, true, 8, 32, 4);
  await matmulCase(1, 768, 70, MM_LN | MM_BIAS | MM_ADD, false, 1, 128, 2); // 2 invocations along the columns
});

Deno.test("matmul kernel with four k-quads per loop trip (the GPU decode kernel) matches the reference", async () => {
  // 3 k-slices, K from 48 to 96: every count of whole trips of 4 quads and of quads left over (0 to 3)
  for (let K = 48; K <= 96; K += 4) await matmulCase(1, K, 70, MM_BIAS | MM_ADD, false, 1, 3, 4, false, 4);
  // K = 768, 64 k-slices: no whole trip, 3 quads left over (the 124M shapes), 16-bit weights, LayerNorm
  await matmulCase(1, 768, 300, MM_LN | MM_BIAS | MM_GELU, true, 1, 64, 4, false, 4);
  // 256 k-slices (1024 invocations): K = 768 leaves slices idle, K = 3072 does not
  await matmulCase(1, 768, 70, MM_LN | MM_BIAS | MM_ADD, false, 1, 256, 4, false, 4);
  await matmulCase(1, 3072, 70, MM_BIAS | MM_GELU, true, 1, 256, 4, false, 4);
});

Deno.test("GPU matrix kernel: each row's outputs are bit for bit the same in a one-row product (decoding) and in tiles of 2 to KSPLIT_ROWS rows (a full pass)", async () => {
  const gpu = await getGpu();
  const asGpu = chooseBackend({ ...gpu, isCpu: false }, { headDim: 64 }); // the profile a GPU gets (k-slices), on any adapter
  const M = 7, K = 768, N = 70, flags = MM_LN | MM_BIAS | MM_GELU;
  for (const f16 of [false, true]) {
    const x = randomArray(g, M * K).map((v) => v * 3 + 5);
    const wt = randomArray(g, N * K);
    const bias = randomArray(g, N);
    const lnw = randomArray(g, 2 * K, -1, 2);
    const owned: GPUBuffer[] = [];
    const mat = createMatrix(gpu.device, "w", f16 ? "f16" : "f32", K, N, wt, false, (b) => owned.push(b));
    const run = async (tm: number, row0: number, rows: number) => {
      const c = matmulConstants(asGpu, tm);
      assert.ok(c.KS > 1, "the GPU constants split k");
      const params = new Uint32Array([rows, K, N, 0, N, 0, 2, flags, row0, f32bits(1e-5), 0, 0]);
      const [y] = await runKernel(
        f16 ? MATMUL_F16 : MATMUL,
        [
          { uniform: params },
          { uniform: stepWords({ B: 1, T: rows }) },
          x,
          mat.buffer,
          bias,
          new Float32Array(rows * N),
          lnw,
        ],
        [Math.ceil(N / (4 * c.WG)), Math.ceil(rows / tm)],
        [5],
        c,
      );
      return y;
    };
    const single: Float32Array[] = [];
    for (let r = 0; r < M; r++) single.push((await run(1, r, 1)) as Float32Array);
    for (let tm = 2; tm <= KSPLIT_ROWS; tm++) {
      const y = await run(tm, 0, M);
      for (let r = 0; r < M; r++) {
        assert.deepEqual([...y.subarray(r * N, (r + 1) * N)], [...single[r]], `f16=${f16} TM=${tm} row ${r}`);
      }
    }
    for (const b of owned) b.destroy();
  }
});

Deno.test("matmul kernel with 16-bit weights matches the reference on half-rounded weights", async () => {
  await matmulCase(1, 12, 37, MM_BIAS, true, 1);
  await matmulCase(7, 40, 301, MM_BIAS | MM_GELU | MM_ADD, true, 7);
  await matmulCase(3, 256, 1, 0, true, 3, 2);
});

Deno.test("wide matmul kernel (CPU adapters) matches the reference: odd N, several blocks, 1 to 13 rows, f32 and f16", async () => {
  const R = MM_WIDE_ROWS;
  for (const f16 of [false, true]) {
    // UNROLL 4 (one-row products) and 1 (several rows) as the model picks them, then the other way round
    for (const [one, many] of [[4, 1], [1, 4]]) {
      await matmulCase(1, 12, 37, MM_BIAS, f16, 1, 1, 16, true, one);
      await matmulCase(1, 3072, 768, MM_BIAS | MM_ADD, f16, 1, 1, 16, true, one); // the decode shape
      await matmulCase(3, 20, 300, MM_BIAS | MM_GELU, f16, 3, 1, 16, true, many);
      await matmulCase(R, 40, 300, MM_BIAS | MM_GELU | MM_ADD, f16, R, 1, 16, true, many); // MM_WIDE_ROWS rows
    }
    await matmulCase(9, 48, 257, MM_BIAS | MM_ADD, f16, 5, 1, 16, true);
    await matmulCase(9, 48, 513, 0, f16, 8, 1, 16, true);
    await matmulCase(R - 1, 20, 37, MM_BIAS, f16, R, 1, 16, true);
    await matmulCase(13, 24, 64, MM_ADD, f16, 7, 1, 16, true);
    await matmulCase(2, 768, 5, MM_ADD, f16, 2, 1, 4, true);
  }
});

Deno.test("matmul kernels with 8-bit weights (k-split and wide) match the reference on the weights they store", async () => {
  // K below, at and past a 32-value block; N over several column blocks; one to several rows; LayerNorm fused
  for (
    const [M, K, N, flags, tm] of [
      [1, 24, 37, MM_BIAS, 1],
      [1, 768, 300, MM_BIAS | MM_GELU, 1],
      [3, 96, 513, MM_BIAS | MM_ADD, 3],
      [5, 40, 257, 0, 4],
    ]
  ) {
    await matmulCase(M, K, N, flags, "q8", tm, 1, 16); // k-split, one slice
    await matmulCase(M, K, N, flags | MM_LN, "q8", tm, 4, 4, false, M === 1 ? 4 : 1); // k-slices, four quads
    await matmulCase(M, K, N, flags, "q8", tm, 1, 16, true, M === 1 ? 4 : 1); // wide, UNROLL as the model picks
    await matmulCase(M, K, N, flags, "q8", tm, 1, 16, true, M === 1 ? 1 : 4); // and the other way round
  }
  await matmulCase(1, 3072, 768, MM_BIAS | MM_ADD, "q8", 1, 1, 16, true, 4); // the decode shape
});

Deno.test("wide matmul kernel with x from a uniform buffer (CPU adapters, rows that fit the binding) gives the storage kernel's outputs bit for bit, f32 and f16", async () => {
  const { device } = await getGpu();
  // [M rows, K, N, flags, rows per workgroup, UNROLL]
  const cases: [number, number, number, number, number, number][] = [
    [1, 12, 37, MM_BIAS, 1, 4],
    [1, 768, 2304, MM_BIAS, 1, 4],
    [1, 3072, 768, MM_BIAS | MM_ADD, 1, 4],
    [1, 4 * MM_X_UNIFORM_VEC4S, 24, MM_ADD, 1, 4], // the longest x row the uniform binding holds
    [9, 768, 300, MM_BIAS | MM_GELU, 9, 1],
    [9, 40, 513, MM_BIAS | MM_ADD, 5, 1], // two row tiles, the last one short
    [5, 3072, 40, MM_BIAS, 5, 1],
  ];
  for (const dtype of ["f32", "f16", "q8"] as const) {
    const f16 = dtype;
    for (const [M, K, N, flags, tm, unroll] of cases) {
      const x = randomArray(g, M * K);
      let wt = randomArray(g, N * K);
      const bias = randomArray(g, N);
      const y0 = randomArray(g, M * N);
      const owned: GPUBuffer[] = [];
      const mat = createMatrix(device, "w", dtype, K, N, wt, false, (b) => owned.push(b));
      if (dtype === "f16") wt = toHalf(wt);
      if (dtype === "q8") wt = toQ8(wt, K);
      const params = { uniform: new Uint32Array([M, K, N, 0, N, 0, 2, flags, 0, f32bits(1e-5), 0, 0]) };
      const step = { uniform: stepWords({ B: 1, T: M }) };
      const xu = new Float32Array(4 * MM_X_UNIFORM_VEC4S);
      xu.set(x);
      const lnw = new Float32Array(2 * K);
      const groups: [number, number] = [Math.ceil(N / (16 * MM_WIDE_COLS[dtype])), Math.ceil(M / tm)];
      const constants = { TM: tm, WG: 16, UNROLL: unroll };
      const [ys] = await runKernel(
        { f32: MATMUL_WIDE, f16: MATMUL_WIDE_F16, q8: MATMUL_WIDE_Q8 }[dtype],
        [params, step, x, mat.buffer, bias, y0.slice(), lnw],
        groups,
        [5],
        constants,
      );
      const [yu] = await runKernel(
        { f32: MATMUL_WIDE_XU, f16: MATMUL_WIDE_XU_F16, q8: MATMUL_WIDE_XU_Q8 }[dtype],
        [params, step, { uniform: new Uint32Array(xu.buffer) }, mat.buffer, bias, y0.slice(), lnw],
        groups,
        [5],
        constants,
      );
      for (const b of owned) b.destroy();
      const what = `M=${M} K=${K} N=${N} flags=${flags} TM=${tm} f16=${f16}`;
      let ref = linearRef(x, M, K, wt, N, flags & MM_BIAS ? bias : undefined);
      if (flags & MM_GELU) ref = ref.map(geluRef);
      if (flags & MM_ADD) ref = ref.map((v, i) => v + y0[i]);
      assertClose(ys.subarray(0, M * N), ref, 2e-5 * Math.sqrt(K), 1e-5, `storage kernel ${what}`);
      assert.deepEqual([...yu.subarray(0, M * N)], [...ys.subarray(0, M * N)], `uniform x against storage x, ${what}`);
    }
  }
});

Deno.test("embedding kernel gathers token + position rows from vocabulary chunks", async () => {
  const { device } = await getGpu();
  for (const dtype of ["f32", "f16", "q8"] as const) {
    const V = 600, C = dtype === "q8" ? 40 : 12, ctx = 9, B = 2, T = 4, L = 7, start = 2, pos0 = 3;
    let wte = randomArray(g, V * C); // [V, C]
    if (dtype === "f16") wte = toHalf(wte);
    if (dtype === "q8") wte = toQ8(wte, C); // idempotent: the writer stores the same
    const wpe = randomArray(g, ctx * C);
    const tokens = new Uint32Array(B * L).map(() => g.nextUint32() % V);
    tokens[start] = 0;
    tokens[L + start + 1] = V - 1;
    tokens[start + 1] = 256; // first id of the second chunk
    const x = new Float32Array(B * T * C);
    const owned: GPUBuffer[] = [];
    const chunk = 256;
    for (let v0 = 0; v0 < V; v0 += chunk) {
      const vn = Math.min(chunk, V - v0);
      const mat = createMatrix(
        device,
        "wte",
        dtype,
        C,
        vn,
        wte.subarray(v0 * C, (v0 + vn) * C),
        false,
        (b) => owned.push(b),
      );
      const [out] = await runKernel(
        { f32: EMBEDDING, f16: EMBEDDING_F16, q8: EMBEDDING_Q8 }[dtype],
        [
          { uniform: new Uint32Array([C, v0, vn, 0]) },
          { uniform: stepWords({ B, T, start, pos0, L }) },
          tokens,
          mat.buffer,
          wpe,
          x,
        ],
        [1, B * T],
        [5],
      );
      x.set(out);
    }
    const ref = new Float32Array(B * T * C);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        const id = tokens[b * L + start + t];
        for (let c = 0; c < C; c++) ref[(b * T + t) * C + c] = wte[id * C + c] + wpe[(pos0 + t) * C + c];
      }
    }
    for (const b of owned) b.destroy();
    assertClose(x, ref, 1e-6, 0, `embedding ${dtype}`);
  }
});

Deno.test("attention kernels store the step's keys and values and match the CPU reference (head_dim 12, one token, cache, a full context over several key blocks)", async () => {
  const C = 24, H = 2, hd = 12;
  const cases = [[1, 1, 0, 1], [2, 5, 0, 5], [1, 1, 70, 71], [2, 130, 0, 130], [1, 3, 61, 80], [2, 4, 3, 9]];
  // long caches: several keys per slice of the key-block kernel's weighted sum (85 slices at head_dim 12)
  cases.push([1, 1, 700, 701], [2, 3, 400, 410]);
  type Variant = {
    spec: KernelSpec;
    constants: Record<string, number>;
    grid: (T: number, B: number) => [number, number?, number?];
  };
  const wide = (AW: number, PARTS: number): Variant => ({
    spec: ATTENTION,
    constants: { AW, PARTS },
    grid: (T, B) => [T, H, B],
  });
  const block = (KB: number): Variant => ({
    spec: ATTENTION_BLOCK,
    constants: { HD4: hd / 4, KB },
    grid: (T, B) => [T, H, B],
  });
  const serial: Variant = { spec: ATTENTION_SERIAL, constants: {}, grid: (T, B) => [Math.ceil(T * H / 64), B] };
  for (const v of [wide(64, 1), wide(256, 4), serial, block(1024), block(32), block(7)]) {
    for (const [B, T, pos0, cap] of cases) {
      await checkAttention(v, B, T, pos0, cap);
    }
  }
  async function checkAttention(v: Variant, B: number, T: number, pos0: number, cap: number) {
    const qkv = randomArray(g, B * T * 3 * C, -2, 2);
    // slots from pos0 on hold NaN: the step's keys must come from the qkv rows, not the cache
    const cache = () => {
      const c = randomArray(g, B * cap * C, -2, 2);
      for (let b = 0; b < B; b++) c.fill(NaN, (b * cap + pos0) * C, (b + 1) * cap * C);
      return c;
    };
    const kc = cache(), vc = cache();
    const [kOut, vOut, out] = (await runKernel(
      v.spec,
      [
        { uniform: new Uint32Array([C, H, hd, cap, f32bits(1 / Math.sqrt(hd)), 0, 0, 0]) },
        { uniform: stepWords({ B, T, pos0 }) },
        qkv,
        kc,
        vc,
        new Float32Array(B * T * C),
      ],
      v.grid(T, B),
      [3, 4, 5],
      v.constants,
    )) as Float32Array[];
    const what = `${v.spec.name} ${JSON.stringify(v.constants)} B=${B} T=${T} pos0=${pos0} cap=${cap}`;
    for (let b = 0; b < B; b++) {
      const n = pos0 + T;
      const qb = new Float32Array(T * C), kb = new Float32Array(n * C), vb = new Float32Array(n * C);
      kb.set(kc.subarray(b * cap * C, (b * cap + pos0) * C));
      vb.set(vc.subarray(b * cap * C, (b * cap + pos0) * C));
      for (let t = 0; t < T; t++) {
        const r = (b * T + t) * 3 * C;
        qb.set(qkv.subarray(r, r + C), t * C);
        kb.set(qkv.subarray(r + C, r + 2 * C), (pos0 + t) * C);
        vb.set(qkv.subarray(r + 2 * C, r + 3 * C), (pos0 + t) * C);
      }
      const ref = attentionRef(qb, kb, vb, T, pos0, C, H);
      assertClose(out.subarray(b * T * C, (b + 1) * T * C), ref, 1e-5, 1e-5, `${what} row ${b}`);
      // the cache now holds slots 0..n of this row exactly; later slots are untouched
      const rowOf = (c: Float32Array) => [...c.subarray(b * cap * C, (b + 1) * cap * C)];
      assert.deepEqual(rowOf(kOut).slice(0, n * C), [...kb], `${what}: keys in the cache, row ${b}`);
      assert.deepEqual(rowOf(vOut).slice(0, n * C), [...vb], `${what}: values in the cache, row ${b}`);
      assert.ok(rowOf(kOut).slice(n * C).every(Number.isNaN), `${what}: key slots after the step untouched`);
      assert.ok(rowOf(vOut).slice(n * C).every(Number.isNaN), `${what}: value slots after the step untouched`);
    }
  }
});

Deno.test("argmax kernels (split in parts for GPUs, serial for CPU adapters) pick the first largest logit and write it after the window", async () => {
  for (const kind of ["split", "serial"]) {
    for (const V of [37, 1000, 50257]) {
      const B = 3, ldl = Math.ceil(V / 64) * 64, L = 10, start = 1, T = 4;
      const logits = randomArray(g, B * ldl, -5, 5);
      logits[0 * ldl + V - 1] = 9; // last id wins
      logits[1 * ldl + 3] = 7; // a tie: the first index wins
      logits[1 * ldl + V - 2] = 7;
      logits[2 * ldl + V] = 100; // padding is never read
      // ties within one invocation's ids, and across the parts of the split kernel
      const chunk = Math.ceil(V / ARGMAX_PARTS);
      for (const v of [V - 1, 2 * 256 + 9, 9, 2048 + 9, chunk + 1]) if (v < V) logits[2 * ldl + v] = 8;
      const params = { uniform: new Uint32Array([V, ldl, ARGMAX_PARTS, chunk]) };
      const step = { uniform: stepWords({ B, T, start, L }) };
      let tokens: Float32Array | Uint32Array;
      if (kind === "split") {
        const [parts] = await runKernel(
          ARGMAX_PART,
          [params, step, logits, new Uint32Array(B * ARGMAX_PARTS * 2)],
          [ARGMAX_PARTS, B],
          [3],
        );
        [tokens] = await runKernel(ARGMAX_FINAL, [params, step, parts, new Uint32Array(B * L)], [B], [3]);
      } else {
        [tokens] = await runKernel(ARGMAX_SERIAL, [params, step, logits, new Uint32Array(B * L)], [B], [3]);
      }
      for (let b = 0; b < B; b++) {
        let best = 0;
        for (let v = 1; v < V; v++) if (logits[b * ldl + v] > logits[b * ldl + best]) best = v;
        assert.equal(tokens[b * L + start + T], best, `${kind} V=${V} row ${b}`);
      }
    }
  }
});
