/**
 * The hub's side of a download: asking about a file (HEAD), fetching it with time limits, and
 * checking what arrives (size, SHA-256) before it is kept. Every failure is one {@linkcode HubError}
 * naming the file and the URL.
 *
 * @module
 */

import { isNotFound, lstat, openWriter, readChunks, remove, rename } from "../platform/files.ts";

/** Bytes of a file so far (hub.ts's `DownloadProgress`). */
interface Progress {
  file: string;
  done: number;
  total: number;
}

/** The part of `node:crypto`'s incremental hash used here. */
interface Hash {
  update(data: Uint8Array): unknown;
  digest(encoding: "hex"): string;
}

/** A SHA-256 hash from `node:crypto` (Deno and Node), loaded when a download needs one. */
async function sha256(): Promise<Hash> {
  const name = "node:crypto"; // a variable, so that bundlers for the web leave it alone
  const { createHash } = await import(name) as { createHash(algorithm: string): Hash };
  return createHash("sha256");
}

export const COMMIT = /^[0-9a-f]{40}$/;
/** A blob's name: letters, digits, `_`, `-` and inner dots, never `.` or `..` (the hub's are hex digests). */
const ETAG = /^[A-Za-z0-9][\w.-]*$/;
/** An LFS file's ETag: the SHA-256 of its bytes. */
const SHA256 = /^[0-9a-f]{64}$/;

/** Thrown when a model cannot be had from the hub or the cache: one sentence saying why and what to do. */
export class HubError extends Error {
  /**
   * Creates the error.
   *
   * @param message What failed and what to do.
   */
  constructor(message: string) {
    super(message);
    this.name = "HubError";
  }
}

/** The default time limit of a hub request: `HF_HUB_DOWNLOAD_TIMEOUT` seconds, else 10 s. */
export function defaultTimeoutMs(raw: string | undefined): number {
  const s = raw === undefined ? NaN : Number(raw);
  return Number.isFinite(s) && s > 0 ? s * 1000 : 10_000;
}

/** A fetch that gives up after `ms` without an answer; every failure is a {@linkcode HubError} naming the file and URL. */
export async function request(
  url: string,
  init: RequestInit & { signal?: AbortSignal },
  o: { file: string; ms: number },
): Promise<{ res: Response; abort: (why: unknown) => void }> {
  const ctl = new AbortController();
  const outer = init.signal;
  const onAbort = () => ctl.abort(outer!.reason);
  outer?.addEventListener("abort", onAbort, { once: true });
  const timer = setTimeout(() => ctl.abort(new HubTimeout()), o.ms);
  try {
    const res = await fetch(url, { ...init, signal: ctl.signal });
    return { res, abort: (why) => ctl.abort(why) };
  } catch (e) {
    if (outer?.aborted) throw outer.reason;
    if (ctl.signal.reason instanceof HubTimeout) {
      const why = `no answer within ${o.ms / 1000} s`;
      throw new HubUnreachable(
        `Cannot download '${o.file}' from ${url}: ${why}; check the network, or wait longer with HF_HUB_DOWNLOAD_TIMEOUT (seconds)`,
        url,
        why,
      );
    }
    throw new HubUnreachable(
      `Cannot download '${o.file}' from ${url}: ${reasonOf(e)}; check the network and run again`,
      url,
      reasonOf(e),
    );
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener("abort", onAbort);
  }
}

/** A time limit that ran out. */
class HubTimeout extends Error {}

/** The hub could not be reached at all (a cached copy may stand in). */
export class HubUnreachable extends HubError {
  constructor(message: string, readonly url: string, readonly why: string) {
    super(message);
  }
}

/** A network error's message with its cause. */
function reasonOf(e: unknown): string {
  const err = e as Error & { cause?: Error };
  const cause = err?.cause?.message;
  return (cause && !err.message.includes(cause) ? `${err.message} (${cause})` : err?.message ?? String(e))
    .replace(/\.$/, "");
}

/** What the hub says about a file: its commit, its blob's name, its size and where to get it. */
export interface FileInfo {
  commit: string;
  etag: string;
  size: number;
  url: string;
}

function clean(etag: string | null): string | undefined {
  return etag?.replace(/^W\//, "").replace(/"/g, "") || undefined;
}

/** Asks the hub about a file (HEAD without following the LFS redirect), as `huggingface_hub` does. */
export async function fileInfo(
  repo: string,
  file: string,
  o: {
    endpoint: string;
    revision: string;
    token?: string;
    signal?: AbortSignal;
    timeoutMs: number;
  },
): Promise<FileInfo> {
  let url = `${o.endpoint}/${repo}/resolve/${encodeURIComponent(o.revision)}/${file}`;
  const headers: Record<string, string> = { "Accept-Encoding": "identity" };
  if (o.token) headers.Authorization = `Bearer ${o.token}`;
  for (let hops = 0; hops < 5; hops++) {
    const { res: r } = await request(url, { method: "HEAD", headers, redirect: "manual", signal: o.signal }, {
      file,
      ms: o.timeoutMs,
    });
    await r.body?.cancel();
    const location = r.headers.get("location");
    // a relative redirect is a renamed repository: ask again there
    if (r.status >= 300 && r.status < 400 && location?.startsWith("/")) {
      url = new URL(location, url).href;
      continue;
    }
    if (r.status === 401 || r.status === 403) {
      throw new HubError(
        `Cannot download '${repo}': the hub refused access (${r.status}); it may be gated or private, so accept its terms on the hub and set HF_TOKEN to an access token`,
      );
    }
    if (r.status === 404) {
      const code = r.headers.get("x-error-code");
      if (code === "EntryNotFound") {
        throw new HubError(
          file === "model.safetensors"
            ? `Cannot download '${repo}': it has no model.safetensors (only that format is read; convert PyTorch .bin weights with safetensors first)`
            : `Cannot download '${repo}': it has no ${file}`,
        );
      }
      if (code === "RevisionNotFound") {
        throw new HubError(
          `Cannot download '${repo}': it has no revision '${o.revision}', check the branch, tag or commit`,
        );
      }
      throw new HubError(`Cannot download '${repo}': no such repository on ${o.endpoint}, check the name`);
    }
    if (!r.ok && !(r.status >= 300 && r.status < 400)) {
      throw new HubError(`Cannot download '${repo}/${file}': the hub answered ${r.status} ${r.statusText}`);
    }
    const commit = r.headers.get("x-repo-commit") ?? undefined;
    const etag = clean(r.headers.get("x-linked-etag")) ?? clean(r.headers.get("etag"));
    const size = Number(r.headers.get("x-linked-size") ?? r.headers.get("content-length") ?? 0);
    if (!commit || !COMMIT.test(commit) || !etag || !ETAG.test(etag)) {
      throw new HubError(
        `Cannot download '${repo}/${file}': the hub's answer has no commit or ETag (is ${o.endpoint} a Hugging Face hub?)`,
      );
    }
    return { commit, etag, size, url: location && r.status >= 300 ? new URL(location, url).href : url };
  }
  throw new HubError(`Cannot download '${repo}/${file}': too many redirects`);
}

/** Removes `path` when it is anything but a regular file (a planted symlink is not written through). */
export async function keepOnlyFile(path: string): Promise<number> {
  try {
    const st = await lstat(path);
    if (st.isFile) return st.size;
    await remove(path, st.isDirectory);
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  return 0;
}

/** Feeds the bytes of a file's first `n` bytes to a hash (the part a resumed download keeps). */
async function hashFile(path: string, n: number, hash: Hash): Promise<void> {
  if (n === 0) return;
  for await (const chunk of readChunks(path)) hash.update(chunk);
}

/** Opens a blob's partial file: a resumable prefix (LFS files, whose SHA-256 checks it at the end) or nothing. */
async function openPart(part: string, info: FileInfo, hash?: Hash): Promise<number> {
  const have = await keepOnlyFile(part);
  if (have === 0) return 0;
  // no digest to check a resumed file against, or more bytes than the file has: start over
  if (!hash || (info.size > 0 && have >= info.size)) {
    await remove(part);
    return 0;
  }
  await hashFile(part, have, hash);
  return have;
}

/**
 * Downloads into `blobs/{etag}.incomplete` (resuming it where it can be checked), checks the size
 * and, for LFS files, the SHA-256 against the ETag, then renames it to `blobs/{etag}`. A file that
 * fails a check is deleted.
 */
export async function downloadBlob(
  info: FileInfo,
  blob: string,
  file: string,
  o: {
    token?: string;
    onProgress?: (p: Progress) => void;
    signal?: AbortSignal;
    sameHost: string;
    timeoutMs: number;
  },
): Promise<void> {
  const part = `${blob}.incomplete`;
  const sha = SHA256.test(info.etag) ? await sha256() : undefined;
  let have = await openPart(part, info, sha);
  const headers: Record<string, string> = { "Accept-Encoding": "identity" };
  // the token goes only to the hub itself, not to the storage it redirects to
  if (o.token && new URL(info.url).host === o.sameHost) headers.Authorization = `Bearer ${o.token}`;
  if (have > 0) headers.Range = `bytes=${have}-`;
  const { res: r, abort } = await request(info.url, { headers, signal: o.signal }, { file, ms: o.timeoutMs });
  if (!r.ok || !r.body) {
    await r.body?.cancel();
    // a range the server cannot give: the partial file is no prefix of it
    if (r.status === 416) await remove(part).catch(() => {});
    throw new HubError(
      `Cannot download '${file}' from ${info.url}: the server answered ${r.status} ${r.statusText}; run again later`,
    );
  }
  let hash = sha;
  if (r.status !== 206 && have > 0) {
    // the server sent it all: start over
    have = 0;
    hash = sha ? await sha256() : undefined;
  }
  const done = await receive(r.body, part, { file, info, have, hash, abort, ...o });
  try {
    await verify(part, file, info, done, hash);
  } catch (e) {
    // the kept bytes were no prefix of the file: once more, from the start
    if (have > 0 && !o.signal?.aborted) return await downloadBlob(info, blob, file, o);
    throw e;
  }
  await rename(part, blob);
}

/** Writes a body after the `have` bytes already in `part`; the bytes in the file at the end. */
async function receive(
  body: ReadableStream<Uint8Array>,
  part: string,
  o: {
    file: string;
    info: FileInfo;
    have: number;
    hash?: Hash;
    abort: (why: unknown) => void;
    onProgress?: (p: Progress) => void;
    signal?: AbortSignal;
    timeoutMs: number;
  },
): Promise<number> {
  const { file, info } = o;
  const out = await openWriter(part, o.have > 0);
  let done = o.have;
  const reader = body.getReader();
  try {
    o.onProgress?.({ file, done, total: info.size });
    while (true) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stalled = new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(new HubTimeout()), o.timeoutMs)
      );
      const next = await Promise.race([reader.read(), stalled]).finally(() => clearTimeout(timer));
      if (next.done) break;
      const chunk = next.value;
      if (info.size > 0 && done + chunk.length > info.size) {
        throw new HubError(
          `Cannot download '${file}' from ${info.url}: the server sent more than the ${info.size} bytes the hub announced; the partial file was deleted, run again`,
        );
      }
      await out.write(chunk);
      o.hash?.update(chunk);
      done += chunk.length;
      o.onProgress?.({ file, done, total: info.size });
    }
    return done;
  } catch (e) {
    o.abort(e);
    await reader.cancel().catch(() => {});
    if (o.signal?.aborted) throw e;
    if (e instanceof HubError) {
      await remove(part).catch(() => {});
      throw e;
    }
    const why = e instanceof HubTimeout
      ? `no data for ${o.timeoutMs / 1000} s (wait longer with HF_HUB_DOWNLOAD_TIMEOUT, in seconds)`
      : `the connection broke (${reasonOf(e)})`;
    throw new HubError(
      `Cannot download '${file}' from ${info.url}: ${why} after ${done} of ${
        info.size || "?"
      } bytes; run again to resume`,
    );
  } finally {
    await out.close();
  }
}

/** Checks a finished download's size and digest; deletes it when either is wrong. */
async function verify(part: string, file: string, info: FileInfo, size: number, hash?: Hash): Promise<void> {
  let problem: string | undefined;
  if (info.size > 0 && size !== info.size) problem = `${info.size} bytes were announced and ${size} came`;
  else if (hash) {
    const got = hash.digest("hex");
    if (got !== info.etag) problem = `its SHA-256 should be ${info.etag} and is ${got}`;
  }
  if (problem) {
    await remove(part).catch(() => {});
    throw new HubError(
      `Cannot download '${file}' from ${info.url}: ${problem}; the file was deleted, run again (if it keeps failing, the hub or a proxy is corrupting it)`,
    );
  }
}
