/**
 * Reading local files in Deno (its own API, under its permissions) and in Node (`node:fs`, loaded
 * only when a file is opened there); a browser has no file system, and {@linkcode hasFiles} says so.
 *
 * @module
 */

const deno: typeof Deno | undefined = (globalThis as { Deno?: typeof Deno }).Deno;
const isNode = !deno &&
  typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node ===
    "string";

/** Thrown when a path does not exist: Deno's `NotFound` in Deno, an `Error` with code `ENOENT` elsewhere. */
function notFound(message: string): Error {
  if (deno) return new deno.errors.NotFound(message);
  return Object.assign(new Error(message), { code: "ENOENT" });
}

/** Whether this runtime reads local paths (Deno, Node). */
export function hasFiles(): boolean {
  return Boolean(deno) || isNode;
}

/** What a path is. */
export interface PathKind {
  /** A regular file. */
  isFile: boolean;
  /** A directory. */
  isDirectory: boolean;
}

function isMissing(e: unknown): boolean {
  return (deno && e instanceof deno.errors.NotFound) || (e as { code?: string })?.code === "ENOENT";
}

type NodeFs = typeof import("node:fs/promises");
let nodeFs: Promise<NodeFs> | undefined;
function fs(): Promise<NodeFs> {
  // a variable specifier, so that bundlers for the web leave it alone
  const name = "node:fs/promises";
  return nodeFs ??= import(name) as Promise<NodeFs>;
}

/**
 * What a path is, or undefined when it does not exist.
 *
 * @param path The path.
 * @returns Its kind.
 */
export async function statPath(path: string): Promise<PathKind | undefined> {
  try {
    if (deno) {
      const s = await deno.stat(path);
      return { isFile: s.isFile, isDirectory: s.isDirectory };
    }
    const s = await (await fs()).stat(path);
    return { isFile: s.isFile(), isDirectory: s.isDirectory() };
  } catch (e) {
    if (isMissing(e)) return undefined;
    throw e;
  }
}

/**
 * A text file's contents, or undefined when it does not exist.
 *
 * @param path The file.
 * @returns Its text.
 */
export async function readTextIfExists(path: string): Promise<string | undefined> {
  try {
    return deno ? await deno.readTextFile(path) : await (await fs()).readFile(path, "utf8");
  } catch (e) {
    if (isMissing(e)) return undefined;
    throw e;
  }
}

/** A file open for reading at any offset. */
export interface ReadableFile {
  /** Its size in bytes. */
  size: number;
  /**
   * Reads into `buf` from `offset` until it is full or the file ends.
   *
   * @returns The bytes read.
   */
  readAt(buf: Uint8Array, offset: number): Promise<number>;
  /** Closes it (again is harmless). */
  close(): void;
}

/**
 * Opens a file for reading.
 *
 * @param path The file.
 * @returns It, open.
 * @throws {Error} `NotFound` (Deno) or `ENOENT` when it does not exist, naming it.
 */
export async function openFile(path: string): Promise<ReadableFile> {
  try {
    return deno ? await openDeno(deno, path) : await openNode(path);
  } catch (e) {
    if (isMissing(e)) throw notFound(`Cannot open '${path}': it does not exist`);
    throw e;
  }
}

async function openDeno(d: typeof Deno, path: string): Promise<ReadableFile> {
  const file = await d.open(path, { read: true });
  const size = (await file.stat()).size;
  let closed = false;
  return {
    size,
    async readAt(buf, offset) {
      await file.seek(offset, d.SeekMode.Start);
      let got = 0;
      while (got < buf.length) {
        const n = await file.read(buf.subarray(got));
        if (n === null) break;
        got += n;
      }
      return got;
    },
    close() {
      if (!closed) file.close();
      closed = true;
    },
  };
}

async function openNode(path: string): Promise<ReadableFile> {
  const handle = await (await fs()).open(path, "r");
  const size = (await handle.stat()).size;
  let closed = false;
  return {
    size,
    async readAt(buf, offset) {
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await handle.read(buf, got, buf.length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return got;
    },
    close() {
      if (!closed) handle.close().catch(() => {});
      closed = true;
    },
  };
}
