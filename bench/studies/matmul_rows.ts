/**
 * The CPU matrix kernel with a k-quad's four weight rows written out (UNROLL 4) against walked in a
 * loop (UNROLL 1), for TM rows per workgroup: the four matrix shapes of GPT-2 124M, 12 copies
 * each, timed in alternating pairs. Prints the largest difference of the two outputs (the same
 * sums in the same order, so 0) and the median time ratio of the pairs.
 *
 *   deno run -A bench/studies/matmul_rows.ts [TM] [PAIRS] [f32|f16]
 */
import { MATMUL_WIDE_F16_WGSL, MATMUL_WIDE_WGSL } from "../../kernels/matmul.ts";
import { requestGpu } from "../../src/gpu/device.ts";
import { STEP_UNIFORM_BYTES } from "../../kernels/step.ts";
import { readFloats } from "../_gpu.ts";

const TM = Number(Deno.args[0] ?? 9);
const PAIRS = Number(Deno.args[1] ?? 8);
const f16 = Deno.args[2] === "f16";
const COPIES = 12;
const { device, description } = await requestGpu();
const module = device.createShaderModule({ code: f16 ? MATMUL_WIDE_F16_WGSL : MATMUL_WIDE_WGSL });
const storage = (size: number, extra = 0) =>
  device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | extra });
const setups = [[768, 2304], [768, 768], [768, 3072], [3072, 768]].map(([K, N]) => {
  const words = f16 ? K * N / 2 : K * N;
  const data = new Uint32Array(words).map((_, i) => f16 ? 0x1c001c00 + (i % 977) : 0x3a000000 + (i % 977));
  const ws = Array.from({ length: COPIES }, () => {
    const b = storage(words * 4);
    device.queue.writeBuffer(b, 0, data);
    return b;
  });
  const x = storage(K * 4 * TM);
  device.queue.writeBuffer(x, 0, new Float32Array(K * TM).map((_, i) => (i % 13) / 13));
  const bias = storage(N * 4);
  const params = device.createBuffer({ size: 48, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(params, 0, new Uint32Array([TM, K, N, 0, N, 0, 2, 1, 0, 0, 0, 0]));
  const step = device.createBuffer({
    size: STEP_UNIFORM_BYTES,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(step, 0, new Uint32Array([1, TM, TM, 0, 0, TM, 0, 0]));
  const variants = [4, 1].map((UNROLL) => {
    const y = storage(N * 4 * TM, GPUBufferUsage.COPY_SRC);
    const pipeline = device.createComputePipeline({
      layout: "auto",
      compute: { module, entryPoint: "main", constants: { TM, WG: 16, UNROLL } },
    });
    const groups = ws.map((w) =>
      device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [params, step, x, w, bias, y].map((buffer, binding) => ({ binding, resource: { buffer } })),
      })
    );
    return { pipeline, groups, y };
  });
  return { N, variants };
});

async function run(v: number): Promise<number> {
  const t = performance.now();
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  for (const s of setups) {
    pass.setPipeline(s.variants[v].pipeline);
    for (const g of s.variants[v].groups) {
      pass.setBindGroup(0, g);
      pass.dispatchWorkgroups(Math.ceil(s.N / 256), 1);
    }
  }
  pass.end();
  device.queue.submit([enc.finish()]);
  await device.queue.onSubmittedWorkDone();
  return performance.now() - t;
}

await run(0);
await run(1); // compile both
let diff = 0;
for (const s of setups) {
  const [a, b] = [await readFloats(device, s.variants[0].y), await readFloats(device, s.variants[1].y)];
  for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i] - b[i]));
}
const ratios: number[] = [];
const times: number[][] = [[], []];
for (let i = 0; i < PAIRS; i++) {
  const order = i % 2 ? [1, 0] : [0, 1];
  const t: number[] = [];
  for (const v of order) t[v] = await run(v);
  times[0].push(t[0]);
  times[1].push(t[1]);
  ratios.push(t[0] / t[1]);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
console.log(`# ${description} · ${f16 ? "f16" : "f32"} · TM=${TM} · ${PAIRS} pairs · max |difference| ${diff}`);
console.log(
  `UNROLL 4: ${median(times[0]).toFixed(1)} ms, UNROLL 1: ${median(times[1]).toFixed(1)} ms (48 products); ` +
    `median ratio of pairs (4 / 1) ${median(ratios).toFixed(2)}`,
);
