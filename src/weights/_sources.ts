/**
 * Where a safetensors file's bytes come from: a local file, a URL (read with HTTP Range requests,
 * one tensor at a time), a `Blob`/`File`, bytes in memory, or a `Response` (read forward as it
 * streams). Each reads exactly the bytes asked for, or says the file is truncated.
 *
 * @module
 */

import { openFile } from "../platform/files.ts";
import { SafetensorsError } from "./_safetensors_error.ts";

/** Random access to a file's bytes. */
export interface ByteSource {
  /** A name for messages: the path, URL or file name. */
  readonly name: string;
  /** The size in bytes. */
  readonly size: number;
  /**
   * Reads `length` bytes at `offset`.
   *
   * @throws {SafetensorsError} When the file ends first.
   */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Frees what it holds (again is harmless). */
  close(): void;
}

/** What {@linkcode GPTModel.load} reads weights from. */
export type WeightsInput = string | URL | Blob | ArrayBuffer | Uint8Array | Response;

function truncated(name: string, at: number): never {
  throw new SafetensorsError(`Cannot read '${name}': the file ended after ${at} bytes, it is truncated`);
}

/**
 * Bytes in memory.
 *
 * @param bytes The file.
 * @param name Its name for messages.
 * @returns The source.
 */
export function bytesSource(bytes: Uint8Array, name = "the given bytes"): ByteSource {
  return {
    name,
    size: bytes.length,
    read(offset, length) {
      if (offset + length > bytes.length) truncated(name, bytes.length);
      return Promise.resolve(bytes.subarray(offset, offset + length));
    },
    close() {},
  };
}

/**
 * A `Blob` or `File`, sliced per read (a browser keeps a picked file on disk).
 *
 * @param blob The file.
 * @returns The source.
 */
export function blobSource(blob: Blob): ByteSource {
  const name = (blob as File).name || "the given Blob";
  return {
    name,
    size: blob.size,
    async read(offset, length) {
      if (offset + length > blob.size) truncated(name, blob.size);
      return new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
    },
    close() {},
  };
}

/**
 * A local file.
 *
 * @param path The file.
 * @returns The source.
 */
export async function fileSource(path: string): Promise<ByteSource> {
  const file = await openFile(path);
  return {
    name: path,
    size: file.size,
    async read(offset, length) {
      const buf = new Uint8Array(length);
      const got = await file.readAt(buf, offset);
      if (got < length) truncated(path, offset + got);
      return buf;
    },
    close: () => file.close(),
  };
}

/**
 * A `Response` read forward: each read must start at or after the end of the one before (the
 * safetensors reader asks in file order), so the body is never held whole.
 *
 * @param response The response.
 * @returns The source.
 */
export function responseSource(response: Response): ByteSource {
  const name = response.url || "the given Response";
  const length = Number(response.headers.get("content-length") ?? NaN);
  if (!response.body || !Number.isSafeInteger(length)) {
    throw new TypeError(
      `Cannot load weights from ${name}: the response has no Content-Length, pass its blob() or a URL instead`,
    );
  }
  const reader = response.body.getReader();
  let at = 0; // stream position
  let pending = new Uint8Array(0); // bytes read past `at - pending.length`
  return {
    name,
    size: length,
    async read(offset, len) {
      const start = at - pending.length;
      if (offset < start) {
        throw new RangeError(`Cannot read ${name} backwards (byte ${offset} after ${start}): a Response is read once`);
      }
      const out = new Uint8Array(len);
      let filled = 0;
      let skip = offset - start;
      while (filled < len) {
        if (pending.length === 0) {
          const { value, done } = await reader.read();
          if (done) truncated(name, at);
          pending = value;
          at += value.length;
        }
        const drop = Math.min(skip, pending.length);
        pending = pending.subarray(drop);
        skip -= drop;
        const take = Math.min(len - filled, pending.length);
        out.set(pending.subarray(0, take), filled);
        pending = pending.subarray(take);
        filled += take;
      }
      return out;
    },
    close: () => void reader.cancel().catch(() => {}),
  };
}

/**
 * A URL, read with HTTP Range requests (one per read). A server that ignores Range answers with the
 * whole file, which is then read forward as it streams.
 *
 * @param url The file.
 * @param init Request options (headers such as `Authorization`, a `signal`).
 * @returns The source.
 * @throws {Error} When the server answers with an error status.
 */
export async function urlSource(url: URL, init: RequestInit = {}): Promise<ByteSource> {
  const name = url.href;
  const get = async (from: number, to: number) => {
    const headers = new Headers(init.headers);
    headers.set("range", `bytes=${from}-${to}`);
    const r = await fetch(url, { ...init, headers });
    if (!r.ok) {
      await r.body?.cancel();
      throw new Error(`Cannot load weights from ${name}: the server answered ${r.status} ${r.statusText}`.trim());
    }
    return r;
  };
  const first = await get(0, 7);
  if (first.status !== 206) return responseSource(first);
  const size = Number(/\/(\d+)\s*$/.exec(first.headers.get("content-range") ?? "")?.[1] ?? NaN);
  await first.body?.cancel();
  if (!Number.isSafeInteger(size)) {
    throw new Error(`Cannot load weights from ${name}: its Content-Range gives no file size`);
  }
  return {
    name,
    size,
    async read(offset, length) {
      if (length === 0) return new Uint8Array(0);
      if (offset + length > size) truncated(name, size);
      const r = await get(offset, offset + length - 1);
      const bytes = new Uint8Array(await r.arrayBuffer());
      if (r.status !== 206 || bytes.length !== length) {
        throw new Error(
          `Cannot load weights from ${name}: asked for ${length} bytes at ${offset}, the server sent ${bytes.length} (status ${r.status})`,
        );
      }
      return bytes;
    },
    close() {},
  };
}
