/**
 * Model weights in GPU buffers: the layouts the kernels read, and the conversions from
 * PyTorch's layout (`nn.Linear` weight `[out, in]`) or Conv1D's (`[in, out]`).
 *
 * Matrices are stored input-major in blocks of 256 output columns (element `(k, n)` at
 * `((n / 256) * K + k) * 256 + n % 256`), as float32 or as 16-bit halves (two to a u32), so that
 * one workgroup of the matrix kernel streams one contiguous block. The token embedding and the output head are split
 * by vocabulary rows into chunks that each fit one storage binding; the embedding kernel
 * gathers its rows from the same transposed chunks, so a tied head needs no second copy.
 *
 * @module
 */

/** How weights are stored on the GPU. */
export type WeightDType = "f32" | "f16";

/** One matrix on the GPU. */
export interface GpuMatrix {
  /** The buffer, `K * ldw` elements in blocks of 256 columns. */
  buffer: GPUBuffer;
  /** Input features (rows). */
  K: number;
  /** Output features (real columns). */
  N: number;
  /** Padded column count (N rounded up to 256). */
  ldw: number;
}

/** A vocabulary chunk of a `[vocab, C]` table, stored transposed (K = C, N = ids in the chunk). */
export interface VocabChunk extends GpuMatrix {
  /** First token id of the chunk. */
  v0: number;
}

/** Rounds `n` up to a multiple of `m`. */
export function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

/** Columns in one block of a stored matrix. */
export const BLOCK = 256;

/**
 * Creates a storage buffer holding a `[K, N]` input-major matrix, filled by `fill`, which writes
 * float32 values into a plain `[K, ldw]` array (padding left zero); the values are then laid out
 * in blocks of 256 columns and converted to the storage type.
 *
 * @param device The device.
 * @param label The buffer's label.
 * @param dtype Storage type.
 * @param K Rows (input features).
 * @param N Columns (output features).
 * @param fill Writes the values.
 * @param track Receives the buffer (so that a failure later can free it).
 * @returns The matrix.
 */
export function createMatrix(
  device: GPUDevice,
  label: string,
  dtype: WeightDType,
  K: number,
  N: number,
  fill: (dst: Float32Array, ldw: number) => void,
  track: (b: GPUBuffer) => void,
): GpuMatrix {
  const ldw = roundUp(N, BLOCK);
  const bytes = K * ldw * (dtype === "f16" ? 2 : 4);
  const plain = new Float32Array(K * ldw);
  fill(plain, ldw);
  const buffer = device.createBuffer({
    label,
    size: bytes,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    mappedAtCreation: true,
  });
  track(buffer);
  const range = buffer.getMappedRange();
  const dst = dtype === "f32" ? new Float32Array(range) : new Float16Array(range);
  for (let nb = 0; nb < ldw / BLOCK; nb++) {
    for (let k = 0; k < K; k++) {
      const s = k * ldw + nb * BLOCK;
      dst.set(plain.subarray(s, s + BLOCK), (nb * K + k) * BLOCK);
    }
  }
  buffer.unmap();
  return { buffer, K, N, ldw };
}

/**
 * Writes `src` into `dst` transposed: `src` is `[N, K]` (PyTorch's `[out, in]`), `dst` is
 * `[K, ldw]` starting at column `col0`.
 */
export function transposeInto(
  src: Float32Array,
  N: number,
  K: number,
  dst: Float32Array,
  ldw: number,
  col0 = 0,
): void {
  for (let n = 0; n < N; n++) {
    const s = n * K;
    for (let k = 0; k < K; k++) dst[k * ldw + col0 + n] = src[s + k];
  }
}

/**
 * Writes `src` (`[K, N]` input-major) into `dst` (`[K, ldw]`) at column `col0`.
 */
export function copyInto(
  src: Float32Array,
  K: number,
  N: number,
  dst: Float32Array,
  ldw: number,
  col0 = 0,
): void {
  if (ldw === N && col0 === 0) {
    dst.set(src.subarray(0, K * N));
    return;
  }
  for (let k = 0; k < K; k++) dst.set(src.subarray(k * N, k * N + N), k * ldw + col0);
}

/**
 * How many vocabulary rows fit one chunk: the most that keep `[C, rows]` within the binding
 * limit, a multiple of 64.
 */
export function vocabChunkRows(C: number, dtype: WeightDType, maxBindingBytes: number): number {
  const per = C * (dtype === "f16" ? 2 : 4);
  const rows = Math.floor(maxBindingBytes / per / BLOCK) * BLOCK;
  if (rows < BLOCK) {
    throw new RangeError(
      `Cannot fit the model: one embedding chunk of ${BLOCK} rows needs ${
        BLOCK * per
      } bytes, over the adapter's storage binding limit of ${maxBindingBytes}`,
    );
  }
  return rows;
}

/**
 * Uploads a `[V, C]` table (rows are tokens) as transposed vocabulary chunks.
 *
 * @returns The chunks, in order of their first id.
 */
export function createVocabChunks(
  device: GPUDevice,
  label: string,
  dtype: WeightDType,
  table: Float32Array,
  V: number,
  C: number,
  chunkRows: number,
  track: (b: GPUBuffer) => void,
): VocabChunk[] {
  const chunks: VocabChunk[] = [];
  for (let v0 = 0; v0 < V; v0 += chunkRows) {
    const vn = Math.min(chunkRows, V - v0);
    const m = createMatrix(device, `${label}[${v0}..${v0 + vn})`, dtype, C, vn, (dst, ldw) => {
      transposeInto(table.subarray(v0 * C, (v0 + vn) * C), vn, C, dst, ldw);
    }, track);
    chunks.push({ ...m, v0 });
  }
  return chunks;
}

/** Creates a float32 storage buffer with the given contents. */
export function createVector(
  device: GPUDevice,
  label: string,
  data: Float32Array,
  track: (b: GPUBuffer) => void,
): GPUBuffer {
  const buffer = device.createBuffer({
    label,
    size: roundUp(Math.max(data.byteLength, 16), 4),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    mappedAtCreation: true,
  });
  track(buffer);
  new Float32Array(buffer.getMappedRange()).set(data);
  buffer.unmap();
  return buffer;
}
