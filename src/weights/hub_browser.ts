/**
 * The Hugging Face hub in a browser: `config.json` and `model.safetensors` downloaded once into the
 * page's Cache Storage (as transformers.js keeps its files), then read from there, offline too.
 *
 * @module
 */

import { HubError } from "./_hub_http.ts";
import type { DownloadProgress, HubOptions } from "./hub.ts";

/** The Cache Storage cache that holds the files. */
export const BROWSER_CACHE = "gpt-webgpu-hub";

/** A model's files from the hub, in a browser. */
export interface BrowserHubModel {
  /** `config.json`, parsed. */
  config: Record<string, unknown>;
  /** `model.safetensors` (a cached body: the browser keeps it on disk). */
  weights: Blob;
}

/** Whether this runtime has Cache Storage (browsers, and Deno) but no file system to cache in. */
export function useBrowserCache(hasFiles: boolean): boolean {
  return !hasFiles && typeof (globalThis as { caches?: CacheStorage }).caches?.open === "function";
}

async function cachedFile(
  cache: Cache,
  url: string,
  o: HubOptions & { file: string; repo: string },
): Promise<Response> {
  const hit = await cache.match(url);
  if (hit) return hit;
  if (o.offline) {
    throw new HubError(`Cannot load '${o.repo}': ${o.file} is not in this browser's cache and offline is set`);
  }
  const headers: Record<string, string> = {};
  if (o.token) headers.Authorization = `Bearer ${o.token}`;
  const r = await fetch(url, { headers, signal: o.signal });
  if (!r.ok || !r.body) {
    await r.body?.cancel();
    const why = r.status === 401 || r.status === 403
      ? "no access (pass a token)"
      : r.status === 404
      ? "no such repository, revision or file"
      : `the hub answered ${r.status}`;
    throw new HubError(`Cannot download '${o.file}' of '${o.repo}' from ${url}: ${why}`);
  }
  const total = Number(r.headers.get("content-length") ?? 0);
  const parts: Uint8Array<ArrayBuffer>[] = [];
  let done = 0;
  const reader = r.body.getReader();
  for (;;) {
    const { value, done: end } = await reader.read();
    if (end) break;
    parts.push(value);
    done += value.length;
    o.onProgress?.({ file: o.file, done, total } satisfies DownloadProgress);
  }
  if (total > 0 && done !== total) {
    throw new HubError(`Cannot download '${o.file}' of '${o.repo}': ${done} of ${total} bytes arrived, run again`);
  }
  // only a whole file is kept
  await cache.put(url, new Response(new Blob(parts), { headers: { "content-type": "application/octet-stream" } }));
  return (await cache.match(url))!;
}

/**
 * A GPT-2 model's `config.json` and `model.safetensors`, from the browser's cache or the hub.
 *
 * @param repo `gpt2` or any `owner/name` of a GPT-2 model.
 * @param options Revision, offline mode, token, endpoint, progress, signal.
 * @returns The parsed configuration and the weights.
 * @throws {HubError} When the files cannot be had or the model is not GPT-2.
 */
export async function browserHubModel(repo: string, options: HubOptions = {}): Promise<BrowserHubModel> {
  if (!/^[\w.-]+(\/[\w.-]+)?$/.test(repo)) {
    throw new HubError(`Cannot load '${repo}': it is not a model name like 'gpt2' or 'owner/name'`);
  }
  const endpoint = (options.endpoint ?? "https://huggingface.co").replace(/\/+$/, "");
  const revision = encodeURIComponent(options.revision ?? "main");
  const cache = await caches.open(BROWSER_CACHE);
  const url = (file: string) => `${endpoint}/${repo}/resolve/${revision}/${file}`;
  const o = { ...options, repo };
  const configText = await (await cachedFile(cache, url("config.json"), { ...o, file: "config.json" })).text();
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(configText);
  } catch (e) {
    throw new HubError(`Cannot load '${repo}': its config.json is not JSON (${(e as Error).message})`);
  }
  if (config.model_type !== "gpt2") {
    throw new HubError(
      `Cannot load '${repo}': its config.json is for model_type '${config.model_type}', and only GPT-2 models ('gpt2') can be loaded`,
    );
  }
  const weights = await cachedFile(cache, url("model.safetensors"), { ...o, file: "model.safetensors" });
  return { config, weights: await weights.blob() };
}
