/**
 * Model files from the Hugging Face hub, in the cache layout that Python's `huggingface_hub` uses
 * (`models--{owner}--{name}/blobs/{etag}`, `snapshots/{commit}/{file}` linking to the blob,
 * `refs/{revision}` holding the commit), so that files downloaded here or by Python are found by
 * both. Offline first: a revision already resolved in the cache loads without any request when
 * offline mode is on.
 *
 * @module
 */

import {
  COMMIT,
  defaultTimeoutMs,
  downloadBlob,
  type FileInfo,
  fileInfo,
  HubError,
  HubUnreachable,
  keepOnlyFile,
} from "./_hub_http.ts";
import { readEnv as env } from "../platform/env.ts";
import { exists, lockFile, mkdirp, readText, rename, symlink, writeText } from "../platform/files.ts";

export { HubError };

/** Bytes of one file downloaded so far. */
export interface DownloadProgress {
  /** The file's path in the repository. */
  file: string;
  /** Bytes written so far (a resumed download starts where the last one stopped). */
  done: number;
  /** Bytes in all (0 when the hub did not say). */
  total: number;
}

/** Where and how to get files from the hub. */
export interface HubOptions {
  /** A branch, tag or commit (default `"main"`). */
  revision?: string;
  /** The cache (default `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`). */
  cacheDir?: string;
  /** Use only the cache, send no request (default: on when `HF_HUB_OFFLINE=1`). */
  offline?: boolean;
  /** An access token for gated or private repositories (default `HF_TOKEN`, else the token file). */
  token?: string;
  /** The hub's address (default `HF_ENDPOINT`, else `https://huggingface.co`). */
  endpoint?: string;
  /** Called as a download goes. */
  onProgress?: (p: DownloadProgress) => void;
  /** Stops a download; the part written stays in the cache and the next call resumes it. */
  signal?: AbortSignal;
  /**
   * How long the hub may take to answer a request, and to send the next bytes of a file, in
   * milliseconds (default `HF_HUB_DOWNLOAD_TIMEOUT` seconds, as Python's hub reads it, else 10 s).
   */
  timeoutMs?: number;
}

function hfHome(): string | undefined {
  const home = env("HF_HOME");
  if (home) return home;
  const xdg = env("XDG_CACHE_HOME") ?? (env("HOME") ? `${env("HOME")}/.cache` : undefined);
  return xdg ? `${xdg}/huggingface` : undefined;
}

/**
 * The hub cache directory: `cacheDir`, `HF_HUB_CACHE`, `HF_HOME/hub` or `~/.cache/huggingface/hub`.
 *
 * @param cacheDir A directory to use instead.
 * @returns The directory.
 * @throws {HubError} When none can be found (no permission to read `HOME`).
 */
export function hubCacheDir(cacheDir?: string): string {
  const dir = cacheDir ?? env("HF_HUB_CACHE") ?? (hfHome() ? `${hfHome()}/hub` : undefined);
  if (!dir) {
    throw new HubError(
      "Cannot find the Hugging Face cache: allow reading HOME (--allow-env=HOME) or set HF_HUB_CACHE or cacheDir",
    );
  }
  return dir;
}

/** The token: `HF_TOKEN`, else the token file (`HF_TOKEN_PATH`, `HF_HOME/token`). */
async function defaultToken(): Promise<string | undefined> {
  const t = env("HF_TOKEN");
  if (t) return t;
  const path = env("HF_TOKEN_PATH") ?? (hfHome() ? `${hfHome()}/token` : undefined);
  if (!path) return undefined;
  try {
    return (await readText(path)).trim() || undefined;
  } catch {
    return undefined;
  }
}

const REPO = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)?$/;

/**
 * The cache folder of a model repository: `models--{owner}--{name}`.
 *
 * @param repo `name` or `owner/name`.
 * @returns The folder's name.
 */
export function repoFolder(repo: string): string {
  return `models--${repo.replace("/", "--")}`;
}

async function readRef(storage: string, revision: string): Promise<string | undefined> {
  if (COMMIT.test(revision)) return revision;
  try {
    const c = (await readText(`${storage}/refs/${revision}`)).trim();
    return COMMIT.test(c) ? c : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The local path of a file of a hub repository at a revision, downloading it into the cache
 * when it is not there. A file appears in `snapshots/` only once its blob is complete.
 *
 * @param repo `name` or `owner/name`, e.g. `"gpt2"`.
 * @param file The file's path in the repository.
 * @param options Revision, cache, offline mode, token, endpoint, progress.
 * @returns The path under `snapshots/{commit}/`.
 * @throws {HubError} When the file cannot be had, with the reason.
 */
export async function hubFile(repo: string, file: string, options: HubOptions = {}): Promise<string> {
  if (typeof repo !== "string" || !REPO.test(repo) || repo.includes("..")) {
    throw new HubError(`Cannot download '${repo}': a model name is 'name' or 'owner/name', like 'gpt2'`);
  }
  const revision = options.revision ?? "main";
  if (!/^[\w./-]+$/.test(revision) || revision.split("/").some((p) => p === "" || p === "." || p === "..")) {
    throw new HubError(`Cannot download '${repo}': revision '${revision}' is not a branch, tag or commit`);
  }
  const storage = `${hubCacheDir(options.cacheDir)}/${repoFolder(repo)}`;
  const offline = options.offline ?? env("HF_HUB_OFFLINE") === "1";
  const cached = async () => {
    const commit = await readRef(storage, revision);
    const path = commit && `${storage}/snapshots/${commit}/${file}`;
    return path && await exists(path) ? path : undefined;
  };
  if (offline) {
    const path = await cached();
    if (path) return path;
    throw new HubError(
      `Cannot load '${repo}' offline: ${file} at revision '${revision}' is not in the cache ${storage}; run once with network access`,
    );
  }
  const endpoint = (options.endpoint ?? env("HF_ENDPOINT") ?? "https://huggingface.co").replace(/\/+$/, "");
  const token = options.token ?? await defaultToken();
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMs(env("HF_HUB_DOWNLOAD_TIMEOUT"));
  if (!(timeoutMs > 0)) throw new HubError(`Cannot download '${repo}': timeoutMs '${timeoutMs}' must be above 0`);
  let info: FileInfo;
  try {
    info = await fileInfo(repo, file, { endpoint, revision, token, signal: options.signal, timeoutMs });
  } catch (e) {
    if (!(e instanceof HubUnreachable)) throw e;
    // no network: a cached copy of the revision will do
    const path = await cached();
    if (path) return path;
    throw new HubError(
      `Cannot download '${file}' from ${e.url}: the hub cannot be reached (${e.why}) and '${repo}' is not in the cache; check the network (or wait longer with HF_HUB_DOWNLOAD_TIMEOUT, in seconds) and run again`,
    );
  }
  const pointer = `${storage}/snapshots/${info.commit}/${file}`;
  const blob = `${storage}/blobs/${info.etag}`;
  if (!await exists(pointer)) {
    await mkdirp(`${storage}/blobs`);
    // one download of a blob at a time, across processes: the others wait, then find it complete (the
    // lock file is where huggingface_hub keeps its own: .locks/{repo folder}/{etag}.lock)
    const locks = `${hubCacheDir(options.cacheDir)}/.locks/${repoFolder(repo)}`;
    await mkdirp(locks);
    await keepOnlyFile(`${locks}/${info.etag}.lock`);
    const lock = await lockFile(`${locks}/${info.etag}.lock`);
    try {
      if (!await exists(blob)) {
        await downloadBlob(info, blob, file, {
          token,
          onProgress: options.onProgress,
          signal: options.signal,
          sameHost: new URL(endpoint).host,
          timeoutMs,
        });
      }
    } finally {
      lock.release();
    }
    const dir = pointer.slice(0, pointer.lastIndexOf("/"));
    await mkdirp(dir);
    const up = "../".repeat(2 + file.split("/").length - 1);
    // made under another name and renamed over the pointer: atomic, whoever else links it too
    const tmp = `${pointer}.${crypto.randomUUID()}.tmp`;
    await symlink(`${up}blobs/${info.etag}`, tmp);
    await rename(tmp, pointer);
  }
  if (revision !== info.commit) {
    const ref = `${storage}/refs/${revision}`;
    await mkdirp(ref.slice(0, ref.lastIndexOf("/")));
    const tmp = `${ref}.${crypto.randomUUID()}.tmp`;
    await writeText(tmp, info.commit);
    await rename(tmp, ref);
  }
  return pointer;
}

/**
 * A GPT-2 model's `config.json` and `model.safetensors` from the hub (or the cache), and nothing
 * else; the configuration is checked before the weights are downloaded.
 *
 * @param repo `gpt2`, `gpt2-medium`, `gpt2-large`, `gpt2-xl`, or any `owner/name` of a GPT-2 model.
 * @param options Revision, cache, offline mode, token, endpoint, progress.
 * @returns The snapshot directory holding both files.
 * @throws {HubError} When the model cannot be had or is not a GPT-2 model.
 */
export async function hubModel(repo: string, options: HubOptions = {}): Promise<string> {
  const config = await hubFile(repo, "config.json", options);
  let type: unknown;
  try {
    type = JSON.parse(await readText(config)).model_type;
  } catch (e) {
    throw new HubError(`Cannot load '${repo}': its config.json is not JSON (${(e as Error).message})`);
  }
  if (type !== "gpt2") {
    throw new HubError(
      `Cannot load '${repo}': its config.json is for model_type '${type}', and only GPT-2 models ('gpt2') can be loaded`,
    );
  }
  // the weights of the same commit as the config
  const dir = config.slice(0, config.lastIndexOf("/"));
  const commit = dir.slice(dir.lastIndexOf("/") + 1);
  await hubFile(repo, "model.safetensors", { ...options, revision: commit });
  return dir;
}
