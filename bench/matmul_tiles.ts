/**
 * Register tiles of the training matrix kernel (`C = A B^T`, `kernels/matmul_tiled.ts`'s form) on
 * this adapter: rows x columns per invocation, 8 x 8 invocations a workgroup, rounds alternating
 * between the variants; medians and ranges of GFLOP/s.
 *
 *   deno run -A bench/matmul_tiles.ts [--shape 512,3072,768] [--rounds 5]
 */
import { parseArgs } from "node:util";
import { getGpu } from "../src/gpu/device.ts";

const { values } = parseArgs({ options: { shape: { type: "string" }, rounds: { type: "string" } } });
const [M, N, K] = (values.shape ?? "512,3072,768").split(",").map(Number);
const ROUNDS = Number(values.rounds ?? 5);
const VARIANTS = [[4, 4], [8, 4], [4, 8], [8, 8]];
const gpu = await getGpu();
const { device } = gpu;

function kernel(TM: number, TN: number): string {
  return /* wgsl */ `
struct P { M: u32, N: u32, K: u32, lda: u32, ldb: u32, ldc: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<vec4f>;
@group(0) @binding(2) var<storage, read> b: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let m0 = (wg.y * 8u + lid.y) * ${TM}u;
  let n0 = (wg.x * 8u + lid.x) * ${TN}u;
  var acc: array<array<f32, ${TN}>, ${TM}>;
  var ra: array<u32, ${TM}>;
  var rb: array<u32, ${TN}>;
  for (var i = 0u; i < ${TM}u; i++) { ra[i] = (min(m0 + i, p.M - 1u) * p.lda) / 4u; }
  for (var j = 0u; j < ${TN}u; j++) { rb[j] = (min(n0 + j, p.N - 1u) * p.ldb) / 4u; }
  for (var k = 0u; k < p.K / 4u; k++) {
    var bv: array<vec4f, ${TN}>;
    for (var j = 0u; j < ${TN}u; j++) { bv[j] = b[rb[j] + k]; }
    for (var i = 0u; i < ${TM}u; i++) {
      let x = a[ra[i] + k];
      for (var j = 0u; j < ${TN}u; j++) { acc[i][j] = acc[i][j] + dot(x, bv[j]); }
    }
  }
  for (var i = 0u; i < ${TM}u; i++) {
    for (var j = 0u; j < ${TN}u; j++) {
      if (m0 + i < p.M && n0 + j < p.N) { c[(m0 + i) * p.ldc + n0 + j] = acc[i][j]; }
    }
  }
}`;
}

const buf = (n: number, u: number = GPUBufferUsage.STORAGE) =>
  device.createBuffer({ size: n * 4, usage: u | GPUBufferUsage.COPY_DST });
const params = buf(8, GPUBufferUsage.UNIFORM);
device.queue.writeBuffer(params, 0, new Uint32Array([M, N, K, K, K, N, 0, 0]));
const A = buf(M * K), B = buf(N * K), C = buf(M * N);
const runs = VARIANTS.map(([TM, TN]) => {
  const module = device.createShaderModule({ code: kernel(TM, TN) });
  const pipe = device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
  const group = device.createBindGroup({
    layout: pipe.getBindGroupLayout(0),
    entries: [params, A, B, C].map((buffer, i) => ({ binding: i, resource: { buffer } })),
  });
  return {
    name: `${TM}x${TN}`,
    pipe,
    group,
    grid: [Math.ceil(N / (8 * TN)), Math.ceil(M / (8 * TM))],
    gflops: [] as number[],
  };
});
for (let r = 0; r <= ROUNDS; r++) {
  for (const v of runs) {
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(v.pipe);
    pass.setBindGroup(0, v.group);
    for (let i = 0; i < 3; i++) pass.dispatchWorkgroups(v.grid[0], v.grid[1]);
    pass.end();
    const t = performance.now();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    const ms = (performance.now() - t) / 3;
    if (r > 0) v.gflops.push((2 * M * N * K) / ms / 1e6); // round 0 warms up
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`${gpu.description}; ${M}x${N}x${K}; ${ROUNDS} alternating rounds`);
for (const v of runs) {
  console.log(
    `${v.name} rows x columns per invocation: median ${median(v.gflops).toFixed(1)} GFLOP/s (${
      Math.min(...v.gflops).toFixed(1)
    }-${Math.max(...v.gflops).toFixed(1)})`,
  );
}
