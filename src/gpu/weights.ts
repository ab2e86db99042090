/**
 * Model weights in GPU buffers: the layouts the kernels read, and the conversions from
 * PyTorch's layout (`nn.Linear` weight `[out, in]`) or Conv1D's (`[in, out]`).
 *
 * Matrices are stored input-major in blocks of 256 output columns (element `(k, n)` at
 * `((n / 256) * K + k) * 256 + n % 256`), as float32 or as 16-bit halves (two to a u32), so that
 * one workgroup of the matrix kernel streams one contiguous block. The token embedding and the
 * output head are split by vocabulary rows into chunks that each fit one storage binding; the embedding kernel
 * gathers its rows from the same transposed chunks, so a tied head needs no second copy.
 *
 * @module
 */

import { Q8_BLOCK } from "../../kernels/matmul.ts";
import { halfBits, halfValue, writeHalves } from "../platform/half.ts";
import { BufferUsage } from "./flags.ts";

/**
 * How weights are stored on the GPU: float32, 16-bit floats, or 8-bit integers with a 16-bit float
 * scale for each run of {@linkcode Q8_BLOCK} values along the input dimension of a column.
 */
export type WeightDType = "f32" | "f16" | "q8";

/**
 * Bytes of a `[K, N]` matrix in the blocked layout.
 *
 * @param dtype Storage type.
 * @param K Input features.
 * @param N Output features.
 * @returns The buffer size.
 */
export function matrixBytes(dtype: WeightDType, K: number, N: number): number {
  const ldw = roundUp(N, BLOCK);
  if (dtype === "q8") return K * ldw + Math.ceil(K / Q8_BLOCK) * ldw * 2;
  return K * ldw * (dtype === "f16" ? 2 : 4);
}

/**
 * The smallest 16-bit float at or above `x` (x >= 0), so that no value divided by it rounds past 127.
 *
 * @param x A non-negative number.
 * @returns It as a half, rounded up.
 */
export function halfAtLeast(x: number): number {
  let h = halfBits(x);
  if (halfValue(h) < x) h++;
  return halfValue(h);
}

/**
 * Quantises a block of 256 columns (`[K, 256]` floats) to signed bytes with a 16-bit scale per
 * {@linkcode Q8_BLOCK} k of each column, as llama.cpp's `Q8_0` blocks: `scale = max|w| / 127`
 * (as a half, rounded up), `q = round(w / scale)`.
 *
 * @param src The block, `[K, 256]`.
 * @param K Input features.
 * @param q Receives the bytes, `[K, 256]`.
 * @param scales Receives the scales as half bit patterns, `[ceil(K / Q8_BLOCK), 256]`.
 */
export function quantizeBlock(src: Float32Array, K: number, q: Int8Array, scales: Uint16Array): void {
  for (let kb = 0; kb * Q8_BLOCK < K; kb++) {
    const k1 = Math.min(K, (kb + 1) * Q8_BLOCK);
    for (let j = 0; j < BLOCK; j++) {
      let amax = 0;
      for (let k = kb * Q8_BLOCK; k < k1; k++) {
        const a = Math.abs(src[k * BLOCK + j]);
        if (a > amax || Number.isNaN(a)) amax = a;
      }
      const sc = Number.isNaN(amax) ? NaN : halfAtLeast(amax / 127);
      scales[kb * BLOCK + j] = halfBits(sc);
      for (let k = kb * Q8_BLOCK; k < k1; k++) {
        q[k * BLOCK + j] = sc > 0 ? Math.max(-127, Math.min(127, Math.round(src[k * BLOCK + j] / sc))) : 0;
      }
    }
  }
}

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

const pendingWrites = new WeakMap<GPUDevice, number>();

/**
 * Counts bytes handed to `queue.writeBuffer` since the last {@linkcode drainWrites}.
 *
 * @param device The device written to.
 * @param bytes Bytes just written.
 */
export function countWrites(device: GPUDevice, bytes: number): void {
  pendingWrites.set(device, (pendingWrites.get(device) ?? 0) + bytes);
}

/** The previous drain's submission, per device: waited for by the next drain. */
const lastDrain = new WeakMap<GPUDevice, Promise<void>>();

/**
 * Once more than `limit` bytes were written, submits them and waits for the submission before
 * (so at most about twice `limit` bytes of the implementation's staging copies are alive while a
 * model uploads, and the copy of one batch overlaps the preparation of the next).
 *
 * @param device The device.
 * @param limit Bytes to let pile up.
 */
export async function drainWrites(device: GPUDevice, limit = 8 * 2 ** 20): Promise<void> {
  if ((pendingWrites.get(device) ?? 0) < limit) return;
  pendingWrites.set(device, 0);
  device.queue.submit([]);
  const previous = lastDrain.get(device);
  const done = device.queue.onSubmittedWorkDone();
  done.catch(() => {}); // awaited by the next drain; a lost device is reported by the caller's checks
  lastDrain.set(device, done);
  await previous;
}

/**
 * Waits for the last {@linkcode drainWrites} submission, so that an upload leaves no wait behind.
 *
 * @param device The device.
 */
export async function settleWrites(device: GPUDevice): Promise<void> {
  const last = lastDrain.get(device);
  lastDrain.delete(device);
  await last;
}

/** Columns in one block of a stored matrix. */
export const BLOCK = 256;

/**
 * Writes a matrix into a GPU buffer in the blocked input-major layout, from rows in PyTorch's
 * layout (`[out, in]`: row n holds column n's K weights) or from Conv1D's (`[in, out]`). Each
 * block of 256 columns is assembled in a small scratch array, converted to the storage type and
 * written with `queue.writeBuffer`, so no copy of the whole matrix is ever held.
 */
export class MatrixWriter {
  /** The matrix being written. */
  readonly matrix: GpuMatrix;
  #device: GPUDevice;
  #scratch: Float32Array;
  #out: Float32Array | Uint16Array | Int8Array;
  #scales?: Uint16Array;
  #block = -1;
  #filled = 0;

  /**
   * Creates the buffer.
   *
   * @param device The device.
   * @param label The buffer's label.
   * @param dtype Storage type.
   * @param K Input features.
   * @param N Output features.
   * @param track Receives the buffer (so that a failure later can free it).
   */
  constructor(
    device: GPUDevice,
    label: string,
    dtype: WeightDType,
    K: number,
    N: number,
    track: (b: GPUBuffer) => void,
  ) {
    const ldw = roundUp(N, BLOCK);
    const buffer = device.createBuffer({
      label,
      size: matrixBytes(dtype, K, N),
      usage: BufferUsage.STORAGE | BufferUsage.COPY_DST,
    });
    track(buffer);
    this.#device = device;
    this.#scratch = new Float32Array(K * BLOCK);
    this.#out = dtype === "f32"
      ? this.#scratch
      : dtype === "f16"
      ? new Uint16Array(K * BLOCK)
      : new Int8Array(K * BLOCK);
    if (dtype === "q8") this.#scales = new Uint16Array(Math.ceil(K / Q8_BLOCK) * BLOCK);
    this.matrix = { buffer, K, N, ldw };
  }

  /** Moves to block `nb`, writing out the one being assembled. */
  #to(nb: number): void {
    if (nb === this.#block) return;
    this.#flush();
    this.#block = nb;
    this.#scratch.fill(0);
  }

  #flush(): void {
    if (this.#block < 0) return;
    if (this.#scales) {
      const K = this.matrix.K;
      quantizeBlock(this.#scratch, K, this.#out as Int8Array, this.#scales);
      const at = K * this.matrix.ldw + this.#block * this.#scales.byteLength;
      this.#device.queue.writeBuffer(this.matrix.buffer, at, this.#scales as Uint16Array<ArrayBuffer>);
      countWrites(this.#device, this.#scales.byteLength);
    } else if (this.#out instanceof Uint16Array) writeHalves(this.#scratch, this.#out);
    const bytes = this.#out.BYTES_PER_ELEMENT;
    const offset = this.#block * this.matrix.K * BLOCK * bytes;
    this.#device.queue.writeBuffer(this.matrix.buffer, offset, this.#out as Float32Array<ArrayBuffer>);
    countWrites(this.#device, this.#out.byteLength);
    this.#block = -1;
    this.#filled++;
  }

  /**
   * Writes rows in PyTorch's layout: row r (K values) becomes column `n0 + r`. Columns must
   * arrive in increasing order of their block.
   *
   * @param src `[rows, K]` values.
   * @param n0 The first column written.
   */
  rows(src: Float32Array, n0 = 0): void {
    const K = this.matrix.K;
    const rows = src.length / K;
    let r = 0;
    while (r < rows) {
      const n = n0 + r;
      this.#to(n >> 8);
      const dst = this.#scratch;
      const j = n & (BLOCK - 1);
      const s = r * K;
      if ((j & 7) === 0 && r + 8 <= rows) {
        // eight rows at once: each write fills part of one cache line instead of touching eight
        for (let k = 0; k < K; k++) {
          const d = k * BLOCK + j;
          const i = s + k;
          dst[d] = src[i];
          dst[d + 1] = src[i + K];
          dst[d + 2] = src[i + 2 * K];
          dst[d + 3] = src[i + 3 * K];
          dst[d + 4] = src[i + 4 * K];
          dst[d + 5] = src[i + 5 * K];
          dst[d + 6] = src[i + 6 * K];
          dst[d + 7] = src[i + 7 * K];
        }
        r += 8;
      } else {
        for (let k = 0; k < K; k++) dst[k * BLOCK + j] = src[s + k];
        r++;
      }
    }
  }

  /**
   * Writes an input-major `[K, n]` matrix (Conv1D's layout) into columns `n0 .. n0 + n`.
   *
   * @param src `[K, n]` values.
   * @param n The number of columns in `src`.
   * @param n0 The first column written.
   */
  inputMajor(src: Float32Array, n: number, n0 = 0): void {
    const K = this.matrix.K;
    let j = 0;
    while (j < n) {
      const col = n0 + j;
      const run = Math.min(n - j, BLOCK - (col & (BLOCK - 1)));
      this.#to(col >> 8);
      const dst = this.#scratch;
      const c = col & (BLOCK - 1);
      for (let k = 0; k < K; k++) dst.set(src.subarray(k * n + j, k * n + j + run), k * BLOCK + c);
      j += run;
    }
  }

  /**
   * Writes out the last block.
   *
   * @returns The matrix.
   */
  finish(): GpuMatrix {
    this.#flush();
    return this.matrix;
  }
}

/**
 * Creates a matrix from one tensor in PyTorch's layout (`[N, K]`) or, with `inputMajor`, `[K, N]`.
 *
 * @param device The device.
 * @param label The buffer's label.
 * @param dtype Storage type.
 * @param K Input features.
 * @param N Output features.
 * @param src The values.
 * @param inputMajor Whether `src` is `[K, N]`.
 * @param track Receives the buffer.
 * @returns The matrix.
 */
export function createMatrix(
  device: GPUDevice,
  label: string,
  dtype: WeightDType,
  K: number,
  N: number,
  src: Float32Array,
  inputMajor: boolean,
  track: (b: GPUBuffer) => void,
): GpuMatrix {
  const w = new MatrixWriter(device, label, dtype, K, N, track);
  if (inputMajor) w.inputMajor(src, N);
  else w.rows(src);
  return w.finish();
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
    usage: BufferUsage.STORAGE | BufferUsage.COPY_DST,
    mappedAtCreation: true,
  });
  track(buffer);
  new Float32Array(buffer.getMappedRange()).set(data);
  buffer.unmap();
  return buffer;
}
