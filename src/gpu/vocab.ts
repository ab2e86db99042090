/**
 * The token embedding and output head, `[vocab, C]` tables, as vocabulary chunks that each fit
 * one storage binding, stored transposed like matrices (K = C, N = ids in the chunk).
 *
 * @module
 */

import { BLOCK, matrixBytes, MatrixWriter, type VocabChunk, type WeightDType } from "./weights.ts";

/**
 * How many vocabulary rows fit one chunk: the most that keep `[C, rows]` within the binding
 * limit, a multiple of 64.
 */
export function vocabChunkRows(C: number, dtype: WeightDType, maxBindingBytes: number): number {
  const per = matrixBytes(dtype, C, BLOCK) / BLOCK;
  const rows = Math.floor(maxBindingBytes / per / BLOCK) * BLOCK;
  if (rows < BLOCK) {
    throw new RangeError(
      `Cannot fit the model: one embedding chunk of ${BLOCK} rows needs ${BLOCK * per} bytes, ` +
        `${BLOCK * per - maxBindingBytes} over the adapter's storage binding limit of ${maxBindingBytes}`,
    );
  }
  return rows;
}

/**
 * Writes a `[V, C]` table (rows are tokens) as vocabulary chunks stored like matrices with
 * K = C, taking rows in order, in as many pieces as the caller likes.
 */
export class VocabWriter {
  /** The chunks written so far. */
  readonly chunks: VocabChunk[] = [];
  #device: GPUDevice;
  #label: string;
  #dtype: WeightDType;
  #V: number;
  #C: number;
  #chunkRows: number;
  #track: (b: GPUBuffer) => void;
  #cur?: MatrixWriter;
  #next = 0;

  /**
   * @param device The device.
   * @param label Label prefix of the buffers.
   * @param dtype Storage type.
   * @param V Rows (vocabulary size).
   * @param C Row length.
   * @param chunkRows Rows per chunk.
   * @param track Receives every buffer.
   */
  constructor(
    device: GPUDevice,
    label: string,
    dtype: WeightDType,
    V: number,
    C: number,
    chunkRows: number,
    track: (b: GPUBuffer) => void,
  ) {
    this.#device = device;
    this.#label = label;
    this.#dtype = dtype;
    this.#V = V;
    this.#C = C;
    this.#chunkRows = chunkRows;
    this.#track = track;
  }

  /** Rows written so far. */
  get written(): number {
    return this.#next;
  }

  /**
   * Writes the next rows.
   *
   * @param src `[rows, C]` values.
   * @param row0 The first row's index; must follow the rows written before.
   */
  rows(src: Float32Array, row0: number): void {
    const C = this.#C;
    if (row0 !== this.#next) throw new RangeError(`Rows must arrive in order: expected row ${this.#next}, got ${row0}`);
    const n = src.length / C;
    if (row0 + n > this.#V) throw new RangeError(`Rows ${row0}..${row0 + n} exceed the table's ${this.#V} rows`);
    let done = 0;
    while (done < n) {
      const v = row0 + done;
      const chunk = Math.floor(v / this.#chunkRows);
      const v0 = chunk * this.#chunkRows;
      if (!this.#cur) {
        const vn = Math.min(this.#chunkRows, this.#V - v0);
        this.#cur = new MatrixWriter(
          this.#device,
          `${this.#label}[${v0}..${v0 + vn})`,
          this.#dtype,
          C,
          vn,
          this.#track,
        );
      }
      const take = Math.min(n - done, v0 + this.#cur.matrix.N - v);
      this.#cur.rows(src.subarray(done * C, (done + take) * C), v - v0);
      done += take;
      if (v + take === v0 + this.#cur.matrix.N) {
        this.chunks.push({ ...this.#cur.finish(), v0 });
        this.#cur = undefined;
      }
    }
    this.#next = row0 + n;
  }
}
