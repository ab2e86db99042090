/**
 * Local files in Deno (its own API, under its permissions) and in Node (`node:fs`, loaded only
 * when a file is first used there): reading weights, and what the Hugging Face cache needs. A
 * browser has no file system, and {@linkcode hasFiles} says so.
 *
 * @module
 */

const deno: typeof Deno | undefined = (globalThis as { Deno?: typeof Deno }).Deno;
const isNode = !deno &&
  typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node ===
    "string";

/**
 * The error for a path that does not exist: Deno's `NotFound` in Deno, an `Error` with code
 * `ENOENT` elsewhere.
 *
 * @param message What was looked for, and what to do.
 * @returns The error.
 */
export function notFound(message: string): Error {
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

/**
 * Whether an error says that a path does not exist.
 *
 * @param e The error.
 * @returns True for Deno's `NotFound` and Node's `ENOENT`.
 */
export function isNotFound(e: unknown): boolean {
  return Boolean(deno && e instanceof deno.errors.NotFound) || (e as { code?: string })?.code === "ENOENT";
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
    if (isNotFound(e)) return undefined;
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
    if (isNotFound(e)) return undefined;
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
    if (isNotFound(e)) throw notFound(`Cannot open '${path}': it does not exist`);
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

/** What `lstat` says of a path (a link is not followed). */
export interface Entry {
  /** A regular file. */
  isFile: boolean;
  /** A directory. */
  isDirectory: boolean;
  /** Bytes. */
  size: number;
}

/**
 * A path's entry, not following a link.
 *
 * @param path The path.
 * @returns Its entry.
 * @throws {Error} When it does not exist ({@linkcode isNotFound}).
 */
export async function lstat(path: string): Promise<Entry> {
  if (deno) return await deno.lstat(path);
  const s = await (await fs()).lstat(path);
  return { isFile: s.isFile(), isDirectory: s.isDirectory(), size: s.size };
}

/**
 * Whether a path exists (following links).
 *
 * @param path The path.
 * @returns True when it does.
 */
export async function exists(path: string): Promise<boolean> {
  return (await statPath(path)) !== undefined;
}

/**
 * A text file's contents.
 *
 * @param path The file.
 * @returns Its text.
 */
export async function readText(path: string): Promise<string> {
  return deno ? await deno.readTextFile(path) : await (await fs()).readFile(path, "utf8");
}

/**
 * Writes a text file.
 *
 * @param path The file.
 * @param text Its text.
 */
export async function writeText(path: string, text: string): Promise<void> {
  if (deno) await deno.writeTextFile(path, text);
  else await (await fs()).writeFile(path, text);
}

/**
 * Makes a directory and its parents.
 *
 * @param path The directory.
 */
export async function mkdirp(path: string): Promise<void> {
  if (deno) await deno.mkdir(path, { recursive: true });
  else await (await fs()).mkdir(path, { recursive: true });
}

/**
 * Removes a path.
 *
 * @param path The path.
 * @param recursive Remove a directory's contents too.
 */
export async function remove(path: string, recursive = false): Promise<void> {
  if (deno) await deno.remove(path, { recursive });
  else await (await fs()).rm(path, { recursive });
}

/**
 * Renames a path (over an existing one).
 *
 * @param from The path.
 * @param to Its new name.
 */
export async function rename(from: string, to: string): Promise<void> {
  if (deno) await deno.rename(from, to);
  else await (await fs()).rename(from, to);
}

/**
 * Makes a symbolic link.
 *
 * @param target What it points to.
 * @param path The link.
 */
export async function symlink(target: string, path: string): Promise<void> {
  if (deno) await deno.symlink(target, path);
  else await (await fs()).symlink(target, path);
}

/**
 * A file's bytes, as they are read.
 *
 * @param path The file.
 * @returns Its chunks.
 */
export async function* readChunks(path: string): AsyncGenerator<Uint8Array> {
  if (deno) {
    const f = await deno.open(path, { read: true });
    yield* f.readable; // closes the file at the end
    return;
  }
  const h = await (await fs()).open(path, "r");
  try {
    const buf = new Uint8Array(1 << 20);
    for (;;) {
      const { bytesRead } = await h.read(buf, 0, buf.length, null);
      if (bytesRead === 0) return;
      yield buf.slice(0, bytesRead);
    }
  } finally {
    await h.close();
  }
}

/** A file open for writing. */
export interface Writer {
  /** Writes all of `chunk`. */
  write(chunk: Uint8Array): Promise<void>;
  /** Closes it. */
  close(): Promise<void>;
}

/**
 * Opens a file for writing, made if missing.
 *
 * @param path The file.
 * @param append Write after what it holds (else empty it first).
 * @returns The writer.
 */
export async function openWriter(path: string, append: boolean): Promise<Writer> {
  if (deno) {
    const f = await deno.open(path, { write: true, create: true, truncate: !append, append });
    return {
      async write(chunk) {
        for (let n = 0; n < chunk.length;) n += await f.write(chunk.subarray(n));
      },
      close: () => Promise.resolve(f.close()),
    };
  }
  const h = await (await fs()).open(path, append ? "a" : "w");
  return {
    async write(chunk) {
      for (let n = 0; n < chunk.length;) n += (await h.write(chunk, n)).bytesWritten;
    },
    close: () => h.close(),
  };
}

/**
 * Holds an exclusive lock on a file (made if missing) until `release`: across processes in Deno
 * (`flock`, as Python's `filelock` takes it); Node has no file lock, so there it is only a handle.
 *
 * @param path The lock file.
 * @returns Its release.
 */
export async function lockFile(path: string): Promise<{ release(): void }> {
  if (deno) {
    const f = await deno.open(path, { write: true, create: true });
    try {
      await f.lock(true);
    } catch (e) {
      f.close();
      throw e;
    }
    return { release: () => f.close() };
  }
  const h = await (await fs()).open(path, "a");
  return { release: () => void h.close().catch(() => {}) };
}
