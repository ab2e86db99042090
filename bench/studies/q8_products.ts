/**
 * What limits 8-bit weights on a CPU adapter (llvmpipe): the CPU matrix kernel's one-row (decoding)
 * products of GPT-2 124M's four block shapes (12 copies each, a decoding step's blocks) and its head
 * (768 x 50,432), timed in alternating rounds in one process, with 16-bit weights, with the model's
 * 8-bit kernel, and with variants of the 8-bit kernel made from its text:
 *
 * - `q8 unsigned`: the bytes read as unsigned (and, shift, convert; no sign extension);
 * - `q8 unscaled (bound)`: no per-weight scale multiply: what any scheme that scales less often
 *   (per k-block sums, per-column scales) could at best gain;
 * - `q8 unsigned unscaled (bound)`: both;
 * - `q8 unpack4x8snorm`: the bytes through WGSL's `unpack4x8snorm`;
 * - `q8 no unpacking (bound)`: the weight words used as floats, unscaled: only the loads and sums.
 *
 * The bounds compute wrong products: they only say how much of the time each part takes. Extra
 * WGSL files given as arguments (the same bindings) are timed beside them. Prints each kernel's
 * median time and the median per round of f16's time over its time.
 *
 *   deno run -A bench/studies/q8_products.ts [ROUNDS] [VARIANT.wgsl ...]
 */
import { MATMUL_WIDE_XU_F16_WGSL, MATMUL_WIDE_XU_Q8_WGSL, Q8_BLOCK } from "../../kernels/matmul.ts";
import { STEP_UNIFORM_BYTES } from "../../kernels/step.ts";
import { requestGpu } from "../../src/gpu/device.ts";
import { alternate, median, readFloats, timeVariant } from "../_gpu.ts";

const ROUNDS = Number(Deno.args[0] ?? 9);
const files = Deno.args.slice(1);
const COPIES = 12;
const SHAPES = [[768, 2304, COPIES], [768, 768, COPIES], [768, 3072, COPIES], [3072, 768, COPIES], [768, 50432, 1]];
const { device, description } = await requestGpu();

const SIGNED = "return vec4f(vec4i(i32(u << 24u), i32(u << 16u), i32(u << 8u), i32(u)) >> vec4u(24u));";
const UNSIGNED = "return vec4f(vec4u(u & 0xFFu, (u >> 8u) & 0xFFu, (u >> 16u) & 0xFFu, u >> 24u));";
const unscaled = (code: string) => code.replace(/ \* sc\[\d+\]/g, "");
const unpacked = (code: string, body: string) => code.replace(SIGNED, body);
const q8 = MATMUL_WIDE_XU_Q8_WGSL;
const kinds = [
  { name: "f16", code: MATMUL_WIDE_XU_F16_WGSL, dtype: "f16" },
  { name: "q8", code: q8, dtype: "q8" },
  { name: "q8 unsigned", code: unpacked(q8, UNSIGNED), dtype: "q8" },
  { name: "q8 unscaled (bound)", code: unscaled(q8), dtype: "q8" },
  { name: "q8 unsigned unscaled (bound)", code: unscaled(unpacked(q8, UNSIGNED)), dtype: "q8" },
  { name: "q8 unpack4x8snorm", code: unpacked(q8, "return unpack4x8snorm(u);"), dtype: "q8" },
  { name: "q8 no unpacking (bound)", code: unscaled(unpacked(q8, "return bitcast<vec4f>(vec4u(u));")), dtype: "q8" },
  ...files.map((f) => ({ name: f.replace(/^.*\//, ""), code: Deno.readTextFileSync(f), dtype: "q8" })),
];
for (const k of kinds.slice(2, 7)) {
  if (k.code === q8) throw new Error(`${k.name}: the 8-bit kernel no longer reads as this study expects`);
}

const storage = (size: number, extra = 0) =>
  device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | extra });

// weights: random halves in [-0.05, 0.05] (f16), or random bytes and scales of 4e-4 (q8)
function weights(dtype: string, K: number, N: number): Uint8Array<ArrayBuffer> {
  if (dtype === "f16") return new Uint8Array(new Float16Array(K * N).map(() => (Math.random() - 0.5) / 10).buffer);
  const scales = Math.ceil(K / Q8_BLOCK) * N;
  const out = new Uint8Array(K * N + scales * 2);
  for (let i = 0; i < K * N; i++) out[i] = (Math.random() * 255) | 0;
  new Float16Array(out.buffer, K * N, scales).fill(4e-4);
  return out;
}

const setups = SHAPES.map(([K, N, copies]) => {
  const x = device.createBuffer({ size: 65536, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(x, 0, new Float32Array(K).map(() => Math.random() - 0.5));
  const params = device.createBuffer({ size: 48, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(params, 0, new Uint32Array([1, K, N, 0, N, 0, 2, 0, 0, 0, 0, 0]));
  const step = device.createBuffer({
    size: STEP_UNIFORM_BYTES,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(step, 0, new Uint32Array([1, 1, 1, 0, 0, 1, 0, 0]));
  const bias = storage(N * 4);
  const buffers = { f16: [] as GPUBuffer[], q8: [] as GPUBuffer[] };
  for (const d of ["f16", "q8"] as const) {
    const data = weights(d, K, N);
    for (let c = 0; c < copies; c++) {
      const b = storage(data.byteLength);
      device.queue.writeBuffer(b, 0, data);
      buffers[d].push(b);
    }
  }
  return kinds.map(({ code, dtype }) => {
    const y = storage(N * 4, GPUBufferUsage.COPY_SRC);
    const pipeline = device.createComputePipeline({
      layout: "auto",
      compute: {
        module: device.createShaderModule({ code }),
        entryPoint: "main",
        constants: { TM: 1, WG: 16, UNROLL: 4 },
      },
    });
    const groups = buffers[dtype as "f16" | "q8"].map((w) =>
      device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [params, step, x, w, bias, y].map((buffer, binding) => ({ binding, resource: { buffer } })),
      })
    );
    return { pipeline, groups, workgroups: N / 256, y };
  });
});

const run = (v: number) => timeVariant(device, setups, v);

for (let v = 0; v < kinds.length; v++) await run(v); // compile
for (let v = 0; v < kinds.length; v++) {
  // every kernel wrote every output (a kernel that failed to build writes nothing)
  const ys = await Promise.all(setups.map((s) => readFloats(device, s[v].y)));
  if (ys.some((y) => y.every((e) => e === 0))) throw new Error(`${kinds[v].name} wrote no outputs`);
}
const times = await alternate(kinds.length, ROUNDS, run);
console.log(`# ${description} · one-row products of GPT-2 124M's blocks (x${COPIES}) and head · ${ROUNDS} rounds`);
console.log("| kernel | ms (median) | range | f16's time / this (median of rounds) |");
console.log("| --- | --- | --- | --- |");
kinds.forEach(({ name }, v) => {
  const ts = times[v];
  const speedup = median(ts.map((t, r) => times[0][r] / t));
  console.log(
    `| ${name} | ${median(ts).toFixed(1)} | ${Math.min(...ts).toFixed(1)}-${Math.max(...ts).toFixed(1)} | ${
      speedup.toFixed(2)
    }x |`,
  );
});
