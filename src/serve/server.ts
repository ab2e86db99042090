/**
 * An OpenAI-compatible server with continuous batching: `POST /v1/completions`,
 * `POST /v1/chat/completions`, `GET /v1/models`, the tokenizer endpoints (`/tokenize`,
 * `/detokenize`, `/tokenizer_info`), `GET /metrics`, `GET /health`, and a playground page at `/`.
 * Concurrent requests share the model's decoding steps through a {@linkcode Batcher}.
 *
 * @module
 */

import { GPTModel } from "../model/model.ts";
import { type BatchStats, LocalBackend, type ServingBackend } from "./serving_backend.ts";
import { type ModelSpec, WorkerBackend } from "./_worker_backend.ts";
import { ApiError, type CompletionRequest, parseCompletion } from "./_openai_request.ts";
import { ChatTemplate, parseChat } from "./_chat.ts";
import { detokenize, tokenize, tokenizerInfo } from "./_tokenizer_api.ts";
import { Metrics } from "./_metrics.ts";
import { encode } from "../text/tokenizer.ts";
import { Completion, errorBody } from "./_completions.ts";
import { HTTP1_LIMITS, type Http1Server, listenHttp1 } from "./_http1.ts";
import { PLAYGROUND_HTML, webBuildFile } from "./_playground.ts";

/** Time limits of a server's connections, in milliseconds; past one, the connection is closed. */
export interface ServeLimits {
  /** From a request's first byte to the end of its headers (default 10,000). */
  headerTimeoutMs?: number;
  /** From the end of the headers to the end of the body; the client gets 408 (default 30,000). */
  bodyTimeoutMs?: number;
  /** Between two requests on a kept-alive connection (default 30,000). */
  idleTimeoutMs?: number;
  /** For one write to a client that does not read; its request is cancelled (default 30,000). */
  writeTimeoutMs?: number;
}

/** Options of {@linkcode serve}. */
export interface ServeOptions {
  /** Port (default 8000; 0 picks a free one). */
  port?: number;
  /** Address to listen on (default 127.0.0.1, this machine only). */
  hostname?: string;
  /** The model's name in requests and `/v1/models` (default `gpt2`). */
  modelName?: string;
  /** When set, `/v1/` requests need `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Requests decoding at once (default 8). */
  maxBatch?: number;
  /** Requests waiting for a slot before new ones get 429 (default 64). */
  maxQueue?: number;
  /** Reuse the keys and values of earlier requests' prompts (default true; see `BatcherOptions`). */
  promptCache?: boolean;
  /**
   * Lets web pages from this origin (`"*"`: any) call the API from a browser. By default only the
   * server's own pages (the playground) can: a request with another `Origin` gets 403.
   */
  allowOrigin?: string;
  /**
   * More names the server answers to in `Host` (a loopback server answers `localhost`,
   * `127.0.0.1` and `[::1]`; one on every address, IP addresses and `localhost`).
   */
  allowHosts?: string[];
  /** Largest request body in bytes (default 1 MiB); larger ones get 413. */
  maxBodyBytes?: number;
  /** Time limits of connections (headers 10 s, body 30 s, idle 30 s, each write 30 s). */
  limits?: ServeLimits;
  /** Where failures that are not a request's fault go, in full (default `console.error`). */
  onError?: (e: unknown) => void;
  /** Called once the server listens. */
  onListen?: (addr: Deno.NetAddr) => void;
  /** Where a worker's loading progress goes (default: nowhere). */
  onLog?: (text: string) => void;
  /**
   * The chat template for `/v1/chat/completions`: Jinja source as Hugging Face ships it in
   * `tokenizer_config.json` (default: plain `User:`/`Assistant:` lines, see docs/SERVING.md).
   */
  chatTemplate?: string;
}

export type { ModelSpec };

/** A running server. */
export interface CompletionServer {
  /** Where it listens. */
  readonly addr: Deno.NetAddr;
  /** Its base URL, like `http://127.0.0.1:8000`. */
  readonly url: string;
  /** How busy its batcher is. */
  readonly batcher: BatchStats;
  /** Resolves when it has stopped. */
  readonly finished: Promise<void>;
  /**
   * Stops accepting connections (idle ones close), lets requests in flight finish for up to
   * `graceMs` (default 5,000), cuts the rest short (a 503, or a stream's `error` event), closes
   * every connection within a second more, and frees the batcher's workspace.
   */
  shutdown(graceMs?: number): Promise<void>;
}

/** The headers that let pages of `origin` call the API from a browser. */
function cors(origin: string): Record<string, string> {
  return {
    "access-control-allow-origin": origin,
    "access-control-allow-headers": "authorization, content-type",
    "access-control-allow-methods": "GET, HEAD, POST, OPTIONS",
    "vary": "origin",
  };
}

/** The methods of each route. */
const ROUTES: [RegExp, string[]][] = [
  [/^\/$/, ["GET", "HEAD"]],
  [/^\/health$/, ["GET", "HEAD"]],
  [/^\/v1\/models$/, ["GET", "HEAD"]],
  [/^\/v1\/models\/.+$/, ["GET", "HEAD"]],
  [/^\/v1\/completions$/, ["POST"]],
  [/^\/v1\/chat\/completions$/, ["POST"]],
  [/^(\/v1)?\/(tokenize|detokenize)$/, ["POST"]],
  [/^(\/v1)?\/tokenizer_info$/, ["GET", "HEAD"]],
  [/^\/metrics$/, ["GET", "HEAD"]],
  [/^\/(mod|init_worker)\.js$/, ["GET", "HEAD"]],
];

const LOOPBACK_NAMES = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** The host name of a `Host` header, lower case, without the port (IPv6 in brackets). */
function hostName(host: string): string {
  const h = host.trim().toLowerCase();
  return h.startsWith("[") ? h.slice(0, h.indexOf("]") + 1) : h.replace(/:\d*$/, "");
}

function isIpLiteral(name: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(name) || /^\[[0-9a-f:.]+\]$/.test(name);
}

/**
 * Whether a request's `Host` names this server. A server on a loopback address answers only
 * `localhost`, `127.0.0.1` and `[::1]`; one on another address, that address; one on every address
 * (`0.0.0.0`, `::`), any IP address and `localhost`; `allowHosts` adds names. A name an attacker's
 * DNS controls is refused, so a page cannot reach the server by rebinding its own name.
 */
function hostAllowed(host: string | null, listen: string, allowHosts: string[]): boolean {
  if (host === null) return false;
  const name = hostName(host);
  if (allowHosts.some((h) => h.toLowerCase() === name)) return true;
  const bare = listen.replace(/^\[|\]$/g, "").toLowerCase();
  if (bare === "0.0.0.0" || bare === "::") return isIpLiteral(name) || name === "localhost";
  if (bare === "localhost" || bare === "::1" || bare.startsWith("127.")) return LOOPBACK_NAMES.has(name);
  return name === (bare.includes(":") ? `[${bare}]` : bare);
}

/** Compares a request's `Authorization` with the key in time that does not depend on where they differ. */
async function keyMatches(header: string | null, key: string): Promise<boolean> {
  const m = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? "");
  const enc = new TextEncoder();
  const [a, b] = await Promise.all([m?.[1] ?? "", key].map((k) => crypto.subtle.digest("SHA-256", enc.encode(k))));
  const x = new Uint8Array(a), y = new Uint8Array(b);
  let diff = m ? 0 : 1;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

/** The request body as JSON: `Content-Type: application/json` required. */
async function readJson(req: Request): Promise<unknown> {
  const type = (req.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (type !== "application/json") {
    throw new ApiError(415, `Content-Type '${type || "(none)"}' is not JSON; send 'Content-Type: application/json'`, {
      code: "unsupported_media_type",
    });
  }
  try {
    return JSON.parse(await req.text());
  } catch {
    throw new ApiError(400, "The request body is not valid JSON; send a JSON object", { param: "body" });
  }
}

/** What the handler needs to know. */
interface ApiOptions {
  name: string;
  listen: string;
  apiKey?: string;
  allowOrigin?: string;
  allowHosts: string[];
  onError: (e: unknown) => void;
  template: ChatTemplate;
  metrics: Metrics;
}

/** The API's routes over a backend, and the completions in flight. */
class Api {
  readonly inflight = new Set<Completion>();
  closing = false;
  #backend: ServingBackend;
  #o: ApiOptions;
  #model: Record<string, unknown>;
  #info: { name: string; vocab: number; context: number };

  constructor(backend: ServingBackend, o: ApiOptions) {
    this.#backend = backend;
    this.#o = o;
    this.#model = { id: o.name, object: "model", created: Math.floor(Date.now() / 1000), owned_by: "gpt-webgpu" };
    this.#info = { name: o.name, vocab: backend.config.vocab_size, context: backend.config.context_length };
  }

  /** Answers a request; every error becomes the API's JSON error (500s say no more than that they failed). */
  async handle(req: Request): Promise<Response> {
    let res: Response;
    let origin: string | undefined;
    try {
      origin = this.#guard(req);
      res = await this.#route(req);
    } catch (e) {
      if (!(e instanceof ApiError)) this.#o.onError(e);
      res = e instanceof ApiError ? e.response() : Response.json(errorBody(e), { status: 500 });
    }
    if (origin !== undefined && this.#o.allowOrigin !== undefined) {
      for (const [k, v] of Object.entries(cors(this.#o.allowOrigin === "*" ? "*" : origin))) res.headers.set(k, v);
    }
    return res;
  }

  /** Refuses a `Host` that is not this server and an `Origin` that may not call it; the origin to allow. */
  #guard(req: Request): string | undefined {
    const host = req.headers.get("host");
    if (!hostAllowed(host, this.#o.listen, this.#o.allowHosts)) {
      throw new ApiError(403, `Host '${host}' is not an address of this server; call it by its address`, {
        code: "forbidden_host",
      });
    }
    const origin = req.headers.get("origin");
    if (origin === null || origin === `http://${host}`) return undefined;
    if (this.#o.allowOrigin === "*" || this.#o.allowOrigin === origin) return origin;
    throw new ApiError(
      403,
      `Pages of '${origin}' may not call this server; start it with --allow-origin ${origin} to let them`,
      { code: "forbidden_origin" },
    );
  }

  async #route(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname.replace(/\/+$/, "") || "/";
    const methods = ROUTES.find(([re]) => re.test(path))?.[1];
    if (req.method === "OPTIONS" && this.#o.allowOrigin !== undefined && methods) {
      return new Response(null, { status: 204 });
    }
    if (!methods) throw new ApiError(404, `Unknown route ${req.method} ${path}`, { code: "unknown_url" });
    if (!methods.includes(req.method)) {
      throw new ApiError(405, `${path} takes ${methods.join(" or ")}, not ${req.method}`, {
        code: "method_not_allowed",
        headers: { allow: methods.join(", ") },
      });
    }
    if (path === "/") return new Response(PLAYGROUND_HTML, { headers: { "content-type": "text/html; charset=utf-8" } });
    if (path.endsWith(".js")) return await webBuildFile(path.slice(1));
    const b = this.#backend;
    if (path === "/health") {
      return Response.json({ status: this.closing ? "stopping" : "ok", active: b.active, queued: b.queued });
    }
    if (this.#o.apiKey !== undefined && !await keyMatches(req.headers.get("authorization"), this.#o.apiKey)) {
      throw new ApiError(401, "Incorrect or missing API key; send the server's key as 'Authorization: Bearer KEY'", {
        code: "invalid_api_key",
      });
    }
    if (path === "/v1/models") return Response.json({ object: "list", data: [this.#model] });
    if (path.startsWith("/v1/models/")) return this.#modelInfo(path.slice("/v1/models/".length));
    if (path === "/metrics") {
      return new Response(await this.#o.metrics.text(), { headers: { "content-type": this.#o.metrics.contentType } });
    }
    const o = { ...this.#info, template: this.#o.template };
    if (path.endsWith("/tokenizer_info")) return Response.json(tokenizerInfo(o));
    if (path.endsWith("/tokenize")) return Response.json(tokenize(await readJson(req), o));
    if (path.endsWith("/detokenize")) return Response.json(detokenize(await readJson(req), o));
    const body = await readJson(req);
    if (this.closing) {
      throw new ApiError(503, "The server is shutting down; retry on another one", { code: "shutting_down" });
    }
    const r = path === "/v1/chat/completions"
      ? parseChat(body, this.#info, this.#o.template, encode)
      : parseCompletion(body, this.#info);
    return this.#completions(req, r);
  }

  #modelInfo(raw: string): Response {
    let id = raw;
    try {
      id = decodeURIComponent(raw);
    } catch { /* not percent-encoded text: compare it as it is */ }
    if (id !== this.#o.name) {
      throw new ApiError(404, `The model '${id}' does not exist`, { code: "model_not_found", param: "model" });
    }
    return Response.json(this.#model);
  }

  async #completions(req: Request, r: CompletionRequest): Promise<Response> {
    const c = new Completion(this.#backend, r);
    this.inflight.add(c);
    // the client hung up: its choices stop
    req.signal.addEventListener("abort", () => c.cancel("client"), { once: true });
    const done = c.done.then(() => {
      this.inflight.delete(c);
      this.#o.metrics.finished(c.finished());
    });
    if (r.stream) {
      return new Response(c.stream(this.#o.onError), {
        headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
      });
    }
    try {
      return Response.json(await c.json());
    } finally {
      await done;
    }
  }
}

/** The error codes of requests the connection layer refuses. */
const HTTP_CODES: Record<number, string> = {
  408: "request_timeout",
  413: "request_too_large",
  431: "headers_too_large",
  503: "shutting_down",
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Serves a model with OpenAI's completions API. Given a {@linkcode GPTModel}, it runs in this
 * thread; given where to load one from, it is loaded and run in a worker, so that the server
 * answers at once while the model works even where waiting for the GPU blocks a thread (CPU
 * adapters). The command line's `serve` does the latter. What the server promises (time limits,
 * shutdown, origins, limits) is in docs/SERVING.md.
 *
 * @param source The model, or where a worker loads it from.
 * @param options Address, name, key, origins and limits.
 * @returns The server, listening.
 * @example
 * ```ts ignore
 * const server = await serve({ hub: "gpt2" }, { port: 8000, modelName: "gpt2" });
 * // curl http://127.0.0.1:8000/v1/completions -H 'content-type: application/json' -d '{"model": "gpt2", "prompt": "Hello, I am"}'
 * await server.finished;
 * ```
 */
export async function serve(source: GPTModel | ModelSpec, options: ServeOptions = {}): Promise<CompletionServer> {
  // a template that does not parse is refused before anything loads
  const template = new ChatTemplate(options.chatTemplate);
  const sizes = { maxBatch: options.maxBatch, maxQueue: options.maxQueue, promptCache: options.promptCache };
  const backend: ServingBackend = source instanceof GPTModel
    ? new LocalBackend(source, sizes)
    : await WorkerBackend.start(source, { ...sizes, onLog: options.onLog });
  const hostname = options.hostname ?? "127.0.0.1";
  const port = options.port ?? 8000;
  const api = new Api(backend, {
    name: options.modelName ?? "gpt2",
    listen: hostname,
    apiKey: options.apiKey,
    allowOrigin: options.allowOrigin,
    allowHosts: options.allowHosts ?? [],
    onError: options.onError ?? ((e) => console.error("gpt-webgpu server:", e)),
    template,
    metrics: await Metrics.create(backend),
  });
  let http: Http1Server;
  try {
    http = listenHttp1({
      hostname,
      port,
      handler: (req) => api.handle(req),
      onBadRequest: (e) =>
        new ApiError(e.status, e.message, { code: HTTP_CODES[e.status] ?? "bad_request" }).response(),
      limits: { ...options.limits, maxBodyBytes: options.maxBodyBytes ?? HTTP1_LIMITS.maxBodyBytes },
    });
  } catch (e) {
    await backend.close(0);
    if (e instanceof Deno.errors.AddrInUse) {
      throw new Error(`Cannot listen on ${hostname}:${port}: the address is in use, pick another port`);
    }
    throw e;
  }
  options.onListen?.(http.addr);
  const host = http.addr.hostname.includes(":") ? `[${http.addr.hostname}]` : http.addr.hostname;
  let stopping: Promise<void> | undefined;
  const shutdown = (graceMs = 5000) => stopping ??= stop(api, http, backend, graceMs);
  return {
    addr: http.addr,
    url: `http://${host}:${http.addr.port}`,
    batcher: backend,
    finished: http.finished.then(() => stopping),
    shutdown,
  };
}

/** Stops accepting, gives work in flight `graceMs`, cuts the rest short, closes every connection. */
async function stop(api: Api, http: Http1Server, backend: ServingBackend, graceMs: number): Promise<void> {
  api.closing = true;
  http.stop();
  const end = Date.now() + graceMs;
  while ((api.inflight.size > 0 || http.busy > 0) && Date.now() < end) await sleep(20);
  for (const c of api.inflight) c.cancel("shutdown");
  // the answers cut short (503s, error events) go out, then every connection closes
  const flushed = Date.now() + 1000;
  while (http.busy > 0 && Date.now() < flushed) await sleep(20);
  http.closeAll();
  await http.finished;
  await backend.close(500);
}
