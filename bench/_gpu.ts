/**
 * Helpers the kernel benchmarks share.
 *
 * @module
 */

/** Copies a storage buffer back and returns its contents as floats (waits for the GPU). */
export async function readFloats(device: GPUDevice, b: GPUBuffer): Promise<Float32Array> {
  const r = device.createBuffer({ size: b.size, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(b, 0, r, 0, b.size);
  device.queue.submit([enc.finish()]);
  await r.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(r.getMappedRange().slice(0));
  r.destroy();
  return out;
}

/** One way of running a product: its pipeline, one bind group per copy, and its workgroup count. */
export interface TimedVariant {
  pipeline: GPUComputePipeline;
  groups: GPUBindGroup[];
  workgroups: number;
}

/**
 * Runs variant `v` of every setup (each a list of variants) in one compute pass and waits for it.
 *
 * @returns The milliseconds from encoding to the end of the wait.
 */
export async function timeVariant(device: GPUDevice, setups: TimedVariant[][], v: number): Promise<number> {
  const t = performance.now();
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  for (const s of setups) {
    pass.setPipeline(s[v].pipeline);
    for (const g of s[v].groups) {
      pass.setBindGroup(0, g);
      pass.dispatchWorkgroups(s[v].workgroups);
    }
  }
  pass.end();
  device.queue.submit([enc.finish()]);
  await device.queue.onSubmittedWorkDone();
  return performance.now() - t;
}

/**
 * Times `count` variants for `rounds` rounds, in order on even rounds and reversed on odd ones.
 *
 * @returns Each variant's times, one per round.
 */
export async function alternate(
  count: number,
  rounds: number,
  run: (v: number) => Promise<number>,
): Promise<number[][]> {
  const times: number[][] = Array.from({ length: count }, () => []);
  for (let r = 0; r < rounds; r++) {
    const order = Array.from({ length: count }, (_, v) => v);
    if (r % 2) order.reverse();
    for (const v of order) times[v].push(await run(v));
  }
  return times;
}

/** The median (the upper one for an even count). */
export function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[xs.length >> 1];
}
