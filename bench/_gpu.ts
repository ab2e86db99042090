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
