/**
 * Reading `.safetensors` files: an 8-byte little-endian header length, a JSON header, then the
 * raw tensor bytes. The header is checked in full before any tensor is read, and tensors are
 * read one at a time, from a file, a URL, a `Blob`, bytes or a `Response`.
 *
 * @module
 */

import { SafetensorsError } from "./_safetensors_error.ts";
import { type ByteSource, fileSource } from "./_sources.ts";
import { readHalves, writeHalves } from "../platform/half.ts";

export { SafetensorsError };

/** One tensor's entry in the header. */
export interface TensorInfo {
  /** The tensor's name. */
  name: string;
  /** `F32`, `F16`, `BF16`, or another safetensors dtype. */
  dtype: string;
  /** The shape. */
  shape: number[];
  /** Byte offsets in the data section, `[begin, end)`. */
  begin: number;
  /** End offset (exclusive). */
  end: number;
}

const ITEM_BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

/** The dtypes whose values this reader converts to float32. */
export const FLOAT_DTYPES: readonly string[] = ["F32", "F16", "BF16"];

/** Largest header accepted (100 MB, as the reference implementation). */
const MAX_HEADER = 100_000_000;

/** An open safetensors file: its checked header, and tensors read on demand. */
export class SafetensorsFile implements Disposable {
  /** The path (or URL, or file name) for messages. */
  readonly path: string;
  /** Tensor entries by name, in header order. */
  readonly tensors: Map<string, TensorInfo>;
  /** `__metadata__`, string values. */
  readonly metadata: Record<string, string>;
  #file: ByteSource;
  #dataStart: number;

  private constructor(
    path: string,
    file: ByteSource,
    tensors: Map<string, TensorInfo>,
    metadata: Record<string, string>,
    dataStart: number,
  ) {
    this.path = path;
    this.#file = file;
    this.tensors = tensors;
    this.metadata = metadata;
    this.#dataStart = dataStart;
  }

  /**
   * Opens a file and checks its header: length within the file, JSON that parses, known dtypes,
   * shapes that match byte counts, offsets in order, inside the data section and not overlapping.
   *
   * @param path The file.
   * @returns The open file; close it with `close()` or `using`.
   * @throws {SafetensorsError} On any problem with the header.
   * @throws {Deno.errors.NotFound} When the file does not exist.
   */
  static async open(path: string): Promise<SafetensorsFile> {
    return await SafetensorsFile.from(await fileSource(path));
  }

  /**
   * {@linkcode SafetensorsFile.open} for any byte source (a URL, a `Blob`, bytes, a `Response`).
   *
   * @param file The bytes; closed with the file.
   * @returns The open file.
   * @throws {SafetensorsError} On any problem with the header.
   */
  static async from(file: ByteSource): Promise<SafetensorsFile> {
    const path = file.name;
    try {
      const size = file.size;
      const bad = (why: string): never => {
        throw new SafetensorsError(`Cannot read '${path}': ${why}`);
      };
      if (size < 8) bad(`the file has ${size} bytes, too few for a safetensors header`);
      const lenBytes = await file.read(0, 8);
      const len = Number(new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true));
      if (len > size - 8) {
        bad(
          `the header length ${len} is larger than the file (${size} bytes); it is not a safetensors file or it is truncated`,
        );
      }
      if (len > MAX_HEADER) bad(`the header length ${len} is over the 100 MB limit`);
      if (len < 2) bad(`the header length ${len} is too small`);
      const headerBytes = await file.read(8, len);
      let header: unknown;
      try {
        header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
      } catch (e) {
        bad(`the header is not valid JSON (${(e as Error).message})`);
      }
      if (header === null || typeof header !== "object" || Array.isArray(header)) {
        bad("the header is not a JSON object");
      }
      const dataStart = 8 + len;
      const dataSize = size - dataStart;
      const tensors = new Map<string, TensorInfo>();
      let metadata: Record<string, string> = {};
      for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
        if (name === "__metadata__") {
          if (raw === null || typeof raw !== "object" || Array.isArray(raw)) bad("__metadata__ is not an object");
          metadata = Object.fromEntries(Object.entries(raw as object).map(([k, v]) => [k, String(v)]));
          continue;
        }
        const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
        if (e === null || typeof e !== "object") bad(`tensor '${name}' has no entry object`);
        if (typeof e.dtype !== "string" || !(e.dtype in ITEM_BYTES)) {
          bad(`tensor '${name}' has an unknown dtype ${JSON.stringify(e.dtype)}`);
        }
        const dtype = e.dtype as string;
        if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
          bad(`tensor '${name}' has an invalid shape ${JSON.stringify(e.shape)}`);
        }
        const shape = e.shape as number[];
        const off = e.data_offsets;
        if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0)) {
          bad(`tensor '${name}' has invalid data_offsets ${JSON.stringify(off)}`);
        }
        const [begin, end] = off as number[];
        if (end < begin) bad(`tensor '${name}' ends (${end}) before it begins (${begin})`);
        if (end > dataSize) bad(`tensor '${name}' ends at byte ${end}, past the data section of ${dataSize} bytes`);
        let count = 1;
        for (const d of shape) count *= d;
        if (!Number.isSafeInteger(count) || count * ITEM_BYTES[dtype] !== end - begin) {
          bad(
            `tensor '${name}' has shape [${shape.join(", ")}] of ${dtype} (${count * ITEM_BYTES[dtype]} bytes) but ${
              end - begin
            } bytes of data`,
          );
        }
        tensors.set(name, { name, dtype, shape, begin, end });
      }
      const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
      for (let i = 1; i < sorted.length; i++) {
        if (sorted[i].begin < sorted[i - 1].end) {
          bad(`tensors '${sorted[i - 1].name}' and '${sorted[i].name}' overlap`);
        }
      }
      return new SafetensorsFile(path, file, tensors, metadata, dataStart);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /**
   * Reads one tensor and converts it to float32.
   *
   * @param name The tensor's name.
   * @returns The values, row-major.
   * @throws {SafetensorsError} When the tensor is missing, its dtype is not F32, F16 or BF16, or the file is short.
   */
  async read(name: string): Promise<Float32Array> {
    const info = this.tensors.get(name);
    if (!info) throw new SafetensorsError(`Cannot read '${this.path}': it has no tensor '${name}'`);
    if (!FLOAT_DTYPES.includes(info.dtype)) {
      throw new SafetensorsError(
        `Cannot read tensor '${name}' of '${this.path}': dtype ${info.dtype} is not supported, convert the file to F32, F16 or BF16`,
      );
    }
    const bytes = await this.#file.read(this.#dataStart + info.begin, info.end - info.begin);
    return toFloat32(bytes, info.dtype);
  }

  /** Closes the file. */
  close(): void {
    this.#file.close();
  }

  /** Same as {@linkcode SafetensorsFile.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Converts little-endian F32, F16 or BF16 bytes to float32. */
export function toFloat32(bytes: Uint8Array, dtype: string): Float32Array {
  const n = bytes.length / (dtype === "F32" ? 4 : 2);
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  if (dtype === "F32") return new Float32Array(aligned.buffer, aligned.byteOffset, n).slice();
  const u16 = new Uint16Array(aligned.buffer, aligned.byteOffset, n);
  if (dtype === "F16") return readHalves(u16);
  const u32 = new Uint32Array(n);
  for (let i = 0; i < n; i++) u32[i] = u16[i] << 16;
  return new Float32Array(u32.buffer);
}

/**
 * Writes a safetensors file (F32, F16 or BF16 from float32 values), e.g. for tests and conversions.
 *
 * @param path Where to write.
 * @param tensors Name to `{ shape, data }`.
 * @param dtype Stored dtype.
 * @param metadata `__metadata__` strings.
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, { shape: number[]; data: Float32Array }>,
  dtype: "F32" | "F16" | "BF16" = "F32",
  metadata?: Record<string, string>,
): Promise<void> {
  await Deno.writeFile(path, encodeSafetensors(tensors, dtype, metadata));
}

/**
 * A safetensors file's bytes (F32, F16 or BF16 from float32 values), for any runtime.
 *
 * @param tensors Name to `{ shape, data }`.
 * @param dtype Stored dtype.
 * @param metadata `__metadata__` strings.
 * @returns The file.
 */
export function encodeSafetensors(
  tensors: Record<string, { shape: number[]; data: Float32Array }>,
  dtype: "F32" | "F16" | "BF16" = "F32",
  metadata?: Record<string, string>,
): Uint8Array<ArrayBuffer> {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const parts: Uint8Array[] = [];
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = encodeValues(t.data, dtype);
    header[name] = { dtype, shape: t.shape, data_offsets: [off, off + bytes.length] };
    parts.push(bytes);
    off += bytes.length;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += " ";
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let p = 8 + head.length;
  for (const b of parts) {
    out.set(b, p);
    p += b.length;
  }
  return out;
}

function encodeValues(data: Float32Array, dtype: "F32" | "F16" | "BF16"): Uint8Array {
  if (dtype === "F32") return new Uint8Array(Float32Array.from(data).buffer);
  const u16 = new Uint16Array(data.length);
  if (dtype === "F16") {
    writeHalves(data, u16);
    return new Uint8Array(u16.buffer);
  }
  const u32 = new Uint32Array(Float32Array.from(data).buffer);
  for (let i = 0; i < u32.length; i++) {
    const x = u32[i];
    u16[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16; // round to nearest even
  }
  return new Uint8Array(u16.buffer);
}
