/**
 * Ways of reading float32 weights on a CPU adapter (llvmpipe), for one-row (decoding) products of
 * GPT-2 124M's four matrix shapes, 12 copies each (the weights of a decoding step), timed in
 * alternating rounds:
 *
 * - `storage`: the model's CPU matrix kernel (storage buffer, 16 columns per invocation);
 * - `texture`: the same sums with the weights in an `rgba32float` texture (`textureLoad`);
 * - `uniform-index`: workgroups of one invocation, so that every weight index is the same for
 *   all lanes of llvmpipe's SIMD group;
 * - `x-uniform`: the model's kernel with `x` read from a uniform buffer instead of a storage one.
 *
 * Every variant adds in the same order, so the outputs must agree exactly. Prints each variant's
 * median time and GB/s of weights, and the median ratio of its time to `storage`'s in the same
 * round (below 1: faster than the model's kernel).
 *
 *   deno run -A bench/studies/cpu_load_paths.ts [ROUNDS]
 */
import { MATMUL_WIDE_WGSL } from "../../kernels/matmul.ts";
import { requestGpu } from "../../src/gpu/device.ts";
import { STEP_UNIFORM_BYTES } from "../../kernels/step.ts";
import { alternate, median, readFloats, timeVariant } from "../_gpu.ts";

const ROUNDS = Number(Deno.args[0] ?? 15);
const COPIES = 12;
const SHAPES = [[768, 2304], [768, 768], [768, 3072], [3072, 768]];
const { device, description } = await requestGpu();

const PARAMS = /* wgsl */ `
struct Params {
  M: u32, K: u32, N: u32, pad3: u32,
  ldy: u32, y_off: u32, m_mode: u32, flags: u32,
  x_row0: u32, eps: f32, pad1: u32, pad2: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> x: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;`;

// the model's weight layout: element (k, n) at ((n / 256) * K + k) * 256 + n % 256
const TEXTURE_WGSL = /* wgsl */ `${PARAMS}
@group(0) @binding(3) var w: texture_2d<f32>; // texel (c, k) holds w[k, 4c .. 4c + 3]
@compute @workgroup_size(16)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c0 = gid.x * 4u;
  var a0 = vec4f(0.0); var a1 = vec4f(0.0); var a2 = vec4f(0.0); var a3 = vec4f(0.0);
  for (var k4 = 0u; k4 < p.K / 4u; k4++) {
    let xv = x[k4];
    for (var j = 0u; j < 4u; j++) {
      let k = k4 * 4u + j;
      let s = vec4f(xv[j]);
      a0 = fma(s, textureLoad(w, vec2u(c0, k), 0), a0);
      a1 = fma(s, textureLoad(w, vec2u(c0 + 1u, k), 0), a1);
      a2 = fma(s, textureLoad(w, vec2u(c0 + 2u, k), 0), a2);
      a3 = fma(s, textureLoad(w, vec2u(c0 + 3u, k), 0), a3);
    }
  }
  let acc = array<vec4f, 4>(a0, a1, a2, a3);
  for (var i = 0u; i < 16u; i++) { y[gid.x * 16u + i] = acc[i / 4u][i % 4u]; }
}`;

const UNIFORM_INDEX_WGSL = /* wgsl */ `${PARAMS}
@group(0) @binding(3) var<storage, read> w: array<vec4f>;
@compute @workgroup_size(1)
fn main(@builtin(workgroup_id) wg: vec3u) {
  let g = wg.x; // columns 16 g .. 16 g + 15, the same for every lane
  let wb = (g / 16u) * p.K * 64u + (g % 16u) * 4u;
  var a0 = vec4f(0.0); var a1 = vec4f(0.0); var a2 = vec4f(0.0); var a3 = vec4f(0.0);
  for (var k4 = 0u; k4 < p.K / 4u; k4++) {
    let xv = x[k4];
    for (var j = 0u; j < 4u; j++) {
      let s = vec4f(xv[j]);
      let i = wb + (k4 * 4u + j) * 64u;
      a0 = fma(s, w[i], a0); a1 = fma(s, w[i + 1u], a1); a2 = fma(s, w[i + 2u], a2); a3 = fma(s, w[i + 3u], a3);
    }
  }
  let acc = array<vec4f, 4>(a0, a1, a2, a3);
  for (var i = 0u; i < 16u; i++) { y[g * 16u + i] = acc[i / 4u][i % 4u]; }
}`;

const X_UNIFORM_WGSL = MATMUL_WIDE_WGSL.replace(
  "@group(0) @binding(2) var<storage, read> x: array<vec4f>;",
  "@group(0) @binding(2) var<uniform> x: array<vec4f, 1024>;",
);
if (X_UNIFORM_WGSL === MATMUL_WIDE_WGSL) throw new Error("the CPU matrix kernel no longer declares x as expected");

type Kind = "storage" | "texture" | "uniform-index" | "x-uniform";
const KINDS: Kind[] = ["storage", "texture", "uniform-index", "x-uniform"];
const modules = {
  storage: device.createShaderModule({ code: MATMUL_WIDE_WGSL }),
  texture: device.createShaderModule({ code: TEXTURE_WGSL }),
  "uniform-index": device.createShaderModule({ code: UNIFORM_INDEX_WGSL }),
  "x-uniform": device.createShaderModule({ code: X_UNIFORM_WGSL }),
};
const storage = (size: number, extra = 0) =>
  device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | extra });

const setups = SHAPES.map(([K, N]) => {
  const data = new Float32Array(K * N).map((_, i) => ((i * 7919) % 977) / 977 - 0.5); // [K, N]
  const blocked = new Float32Array(K * N);
  for (let k = 0; k < K; k++) {
    for (let n = 0; n < N; n++) blocked[((n >> 8) * K + k) * 256 + (n & 255)] = data[k * N + n];
  }
  const x = device.createBuffer({
    size: 16384,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(x, 0, new Float32Array(K).map((_, i) => (i % 13) / 13 - 0.4));
  const params = device.createBuffer({ size: 48, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(params, 0, new Uint32Array([1, K, N, 0, N, 0, 2, 0, 0, 0, 0, 0]));
  const step = device.createBuffer({
    size: STEP_UNIFORM_BYTES,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(step, 0, new Uint32Array([1, 1, 1, 0, 0, 1, 0, 0]));
  const bias = storage(N * 4);
  const buffers = Array.from({ length: COPIES }, () => {
    const b = storage(K * N * 4);
    device.queue.writeBuffer(b, 0, blocked);
    return b;
  });
  const textures = Array.from({ length: COPIES }, () => {
    const t = device.createTexture({
      size: [N / 4, K],
      format: "rgba32float",
      usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST,
    });
    device.queue.writeTexture({ texture: t }, data, { bytesPerRow: N * 4 }, [N / 4, K]);
    return t;
  });
  const variants = KINDS.map((kind) => {
    const y = storage(N * 4, GPUBufferUsage.COPY_SRC);
    const model = kind === "storage" || kind === "x-uniform";
    const pipeline = device.createComputePipeline({
      layout: "auto",
      compute: { module: modules[kind], entryPoint: "main", constants: model ? { TM: 1, WG: 16, UNROLL: 4 } : {} },
    });
    const groups = Array.from({ length: COPIES }, (_, c) =>
      device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: model
          ? [params, step, x, buffers[c], bias, y].map((buffer, binding) => ({
            binding,
            resource: { buffer, size: binding === 2 ? (kind === "x-uniform" ? 16384 : K * 4) : undefined },
          }))
          : [
            { binding: 0, resource: { buffer: params } },
            { binding: 2, resource: { buffer: x, size: K * 4 } },
            { binding: 3, resource: kind === "texture" ? textures[c].createView() : { buffer: buffers[c] } },
            { binding: 5, resource: { buffer: y } },
          ],
      }));
    const workgroups = kind === "uniform-index" ? N / 16 : N / 256;
    return { pipeline, groups, y, workgroups };
  });
  return variants;
});

const run = (v: number) => timeVariant(device, setups, v);

for (let v = 0; v < KINDS.length; v++) await run(v); // compile
for (let v = 1; v < KINDS.length; v++) {
  for (const s of setups) {
    const [a, b] = [await readFloats(device, s[0].y), await readFloats(device, s[v].y)];
    if (a.some((e, i) => e !== b[i])) throw new Error(`${KINDS[v]} does not give the storage kernel's outputs`);
  }
}
const times = await alternate(KINDS.length, ROUNDS, run);
const bytes = COPIES * 4 * SHAPES.reduce((s, [K, N]) => s + K * N, 0);
console.log(
  `# ${description} · ${COPIES} copies of ${SHAPES.length} shapes (${
    (bytes / 1e6).toFixed(0)
  } MB of f32 weights) · ${ROUNDS} rounds · outputs identical`,
);
console.log("| reading the weights as | ms (median) | GB/s | time / storage's (median of rounds) |");
console.log("| --- | --- | --- | --- |");
KINDS.forEach((kind, v) => {
  const m = median(times[v]);
  const ratio = median(times[v].map((t, r) => t / times[0][r]));
  console.log(`| ${kind} | ${m.toFixed(1)} | ${(bytes / m / 1e6).toFixed(2)} | ${ratio.toFixed(2)} |`);
});
