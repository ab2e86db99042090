// Runs one kernel on its own, on buffers made from typed arrays, for the kernel tests.
import { getGpu } from "../src/gpu/device.ts";
import { type KernelSpec, layoutOf, pipelineOf } from "../src/gpu/pipelines.ts";
import { STEP_UNIFORM_BYTES } from "../kernels/step.ts";

export type Binding = Float32Array | Uint32Array | GPUBuffer | { uniform: Uint32Array };

export interface Step {
  B: number;
  T: number;
  start?: number;
  pos0?: number;
  L?: number;
}

export function stepWords(s: Step): Uint32Array {
  const w = new Uint32Array(STEP_UNIFORM_BYTES / 4);
  w.set([s.B, s.T, s.B * s.T, s.start ?? 0, s.pos0 ?? 0, s.L ?? s.T, 0, 0]);
  return w;
}

export function f32bits(x: number): number {
  return new Uint32Array(new Float32Array([x]).buffer)[0];
}

/**
 * Dispatches `spec` once with the given bindings (binding i = bindings[i]) and reads back the
 * bindings listed in `read` (as Float32Array or Uint32Array like their input).
 */
export async function runKernel(
  spec: KernelSpec,
  bindings: Binding[],
  workgroups: [number, number?, number?],
  read: number[],
  constants: Record<string, number> = {},
): Promise<(Float32Array | Uint32Array)[]> {
  const { device } = await getGpu();
  device.pushErrorScope("validation");
  const pipe = await pipelineOf(device, spec, constants);
  const made: GPUBuffer[] = [];
  const buffers = bindings.map((b, i) => {
    if (b instanceof GPUBuffer) return b;
    const isUniform = !(b instanceof Float32Array || b instanceof Uint32Array);
    const data = isUniform ? (b as { uniform: Uint32Array }).uniform : b as Float32Array | Uint32Array;
    const size = Math.max(16, Math.ceil(data.byteLength / 16) * 16);
    const buf = device.createBuffer({
      label: `${spec.name}.b${i}`,
      size,
      usage: (isUniform ? GPUBufferUsage.UNIFORM : GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC) |
        GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(buf, 0, data as Uint32Array<ArrayBuffer>);
    made.push(buf);
    return buf;
  });
  const group = device.createBindGroup({
    layout: layoutOf(device, spec),
    entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipe);
  pass.setBindGroup(0, group);
  pass.dispatchWorkgroups(workgroups[0], workgroups[1] ?? 1, workgroups[2] ?? 1);
  pass.end();
  const staging = read.map((i) => {
    const s = device.createBuffer({ size: buffers[i].size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    enc.copyBufferToBuffer(buffers[i], 0, s, 0, buffers[i].size);
    made.push(s);
    return s;
  });
  device.queue.submit([enc.finish()]);
  const err = await device.popErrorScope();
  if (err) throw new Error(`${spec.name}: ${err.message}`);
  const out = await Promise.all(staging.map(async (s, j) => {
    await s.mapAsync(GPUMapMode.READ);
    const src = bindings[read[j]];
    const n = (src instanceof Float32Array || src instanceof Uint32Array) ? src.length : s.size / 4;
    const r = src instanceof Uint32Array
      ? new Uint32Array(s.getMappedRange().slice(0, n * 4))
      : new Float32Array(s.getMappedRange().slice(0, n * 4));
    return r;
  }));
  for (const b of made) b.destroy();
  return out;
}
