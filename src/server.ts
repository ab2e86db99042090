/**
 * An OpenAI-compatible completions server with continuous batching: `POST /v1/completions`,
 * `GET /v1/models`, `GET /health`, and a playground page at `/`. Concurrent requests share the
 * model's decoding steps through a {@linkcode Batcher}.
 *
 * @module
 */

import { GPTModel } from "./model.ts";
import { type BatchStats, LocalBackend, type ServingBackend } from "./_serving.ts";
import { type ModelSpec, WorkerBackend } from "./_worker_backend.ts";
import { ApiError, parseCompletion } from "./_openai_request.ts";
import { Completion } from "./_completions.ts";
import { PLAYGROUND_HTML } from "./_playground.ts";

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
  /**
   * Lets web pages from this origin (`"*"`: any) call the API from a browser. By default only the
   * server's own pages (the playground) can.
   */
  allowOrigin?: string;
  /** Largest request body in bytes (default 1 MiB); larger ones get 413. */
  maxBodyBytes?: number;
  /** Called once the server listens. */
  onListen?: (addr: Deno.NetAddr) => void;
  /** Where a worker's loading progress goes (default: nowhere). */
  onLog?: (text: string) => void;
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
   * Stops accepting connections, lets requests in flight finish for up to `graceMs` (default
   * 5,000), cancels the rest, and frees the batcher's workspace.
   */
  shutdown(graceMs?: number): Promise<void>;
}

/** The headers that let pages of `origin` call the API from a browser. */
function cors(origin: string): Record<string, string> {
  return {
    "access-control-allow-origin": origin,
    "access-control-allow-headers": "authorization, content-type",
    "access-control-allow-methods": "GET, POST, OPTIONS",
  };
}

async function readBody(req: Request, limit: number): Promise<unknown> {
  const tooLarge = () =>
    new ApiError(413, `The request body is over ${limit} bytes; send a smaller one`, { code: "request_too_large" });
  if (Number(req.headers.get("content-length") ?? 0) > limit) throw tooLarge();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const c of req.body ?? new ReadableStream<Uint8Array>()) {
    size += c.length;
    if (size > limit) throw tooLarge();
    chunks.push(c);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new ApiError(400, "The request body is not valid JSON; send a JSON object", { param: "body" });
  }
}

/**
 * A JSON response that may take a while. Past two seconds, the body starts with a space a second
 * (JSON allows leading whitespace), so that a client that went away is noticed at the next write
 * and `onGone` cancels its work; the answer follows. (Deno's `request.signal` also fires after
 * every successful response, and warns on use.)
 */
async function heartbeat(work: Promise<unknown>, onGone: () => void): Promise<Response> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const early = await Promise.race([work, new Promise((r) => timer = setTimeout(r, 2000, heartbeat))]);
  clearTimeout(timer);
  if (early !== heartbeat) return Response.json(early);
  const enc = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(ctl) {
      const put = (s: string) => {
        try {
          ctl.enqueue(enc.encode(s));
        } catch { /* the client went away */ }
      };
      timer = setInterval(() => put(" "), 1000);
      work.then(
        (o) => put(JSON.stringify(o)),
        (e) => {
          const message = `The model failed: ${(e as Error)?.message ?? e}`;
          ctl.enqueue(
            enc.encode(JSON.stringify({ error: { message, type: "server_error", param: null, code: null } })),
          );
        },
      ).finally(() => {
        clearInterval(timer);
        try {
          ctl.close();
        } catch { /* cancelled */ }
      });
    },
    cancel() {
      clearInterval(timer);
      onGone();
    },
  });
  return new Response(body, { headers: { "content-type": "application/json" } });
}

/**
 * Serves a model with OpenAI's completions API. Given a {@linkcode GPTModel}, it runs in this
 * thread; given where to load one from, it is loaded and run in a worker, so that the server
 * answers at once while the model works even where waiting for the GPU blocks a thread (CPU
 * adapters). The command line's `serve` does the latter.
 *
 * @param source The model, or where a worker loads it from.
 * @param options Address, name, key and limits.
 * @returns The server, listening.
 * @example
 * ```ts ignore
 * const server = await serve({ hub: "gpt2" }, { port: 8000, modelName: "gpt2" });
 * // curl http://127.0.0.1:8000/v1/completions -d '{"model": "gpt2", "prompt": "Hello, I am"}'
 * await server.finished;
 * ```
 */
export async function serve(source: GPTModel | ModelSpec, options: ServeOptions = {}): Promise<CompletionServer> {
  const name = options.modelName ?? "gpt2";
  const limit = options.maxBodyBytes ?? 1 << 20;
  const sizes = { maxBatch: options.maxBatch, maxQueue: options.maxQueue };
  const batcher: ServingBackend = source instanceof GPTModel
    ? new LocalBackend(source, sizes)
    : await WorkerBackend.start(source, { ...sizes, onLog: options.onLog });
  const created = Math.floor(Date.now() / 1000);
  const cfg = batcher.config;
  const info = { name, vocab: cfg.vocab_size, context: cfg.context_length };
  const inflight = new Set<Completion>();
  let closing = false;

  const handle = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    const path = url.pathname.replace(/\/+$/, "") || "/";
    if (req.method === "OPTIONS" && options.allowOrigin) return new Response(null, { status: 204 });
    if (path === "/" && req.method === "GET") {
      return new Response(PLAYGROUND_HTML, { headers: { "content-type": "text/html; charset=utf-8" } });
    }
    if (path === "/health" && req.method === "GET") {
      return Response.json({ status: closing ? "stopping" : "ok", active: batcher.active, queued: batcher.queued });
    }
    if (!path.startsWith("/v1/")) {
      throw new ApiError(404, `Unknown route ${req.method} ${path}`, { code: "unknown_url" });
    }
    if (options.apiKey !== undefined && req.headers.get("authorization") !== `Bearer ${options.apiKey}`) {
      throw new ApiError(401, "Incorrect or missing API key; send the server's key as 'Authorization: Bearer KEY'", {
        code: "invalid_api_key",
      });
    }
    const model_ = { id: name, object: "model", created, owned_by: "gpt-webgpu" };
    if (path === "/v1/models" && req.method === "GET") return Response.json({ object: "list", data: [model_] });
    if (path.startsWith("/v1/models/") && req.method === "GET") {
      const raw = path.slice("/v1/models/".length);
      let id = raw;
      try {
        id = decodeURIComponent(raw);
      } catch { /* not percent-encoded text: compare it as it is */ }
      if (id !== name) {
        throw new ApiError(404, `The model '${id}' does not exist`, { code: "model_not_found", param: "model" });
      }
      return Response.json(model_);
    }
    if (path === "/v1/completions" && req.method === "POST") {
      if (closing) {
        throw new ApiError(503, "The server is shutting down; retry on another one", { code: "shutting_down" });
      }
      const r = parseCompletion(await readBody(req, limit), info);
      const c = new Completion(batcher, r);
      inflight.add(c);
      Promise.allSettled(c.choices.map((x) => x.req.result)).then(() => inflight.delete(c));
      // a stream that the client drops is cancelled
      if (r.stream) {
        return new Response(c.stream(), {
          headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
        });
      }
      return await heartbeat(c.json(), () => c.cancel());
    }
    if (path === "/v1/chat/completions") {
      throw new ApiError(404, "GPT-2 is a completion model: this server has no chat endpoint; use /v1/completions", {
        code: "unknown_url",
      });
    }
    throw new ApiError(404, `Unknown route ${req.method} ${path}`, { code: "unknown_url" });
  };

  const listen = () =>
    Deno.serve({
      port: options.port ?? 8000,
      hostname: options.hostname ?? "127.0.0.1",
      onListen: (addr) => options.onListen?.(addr as Deno.NetAddr),
      onError: (e) => {
        const err = e instanceof ApiError ? e : new ApiError(500, `Internal error: ${(e as Error)?.message ?? e}`);
        return err.response();
      },
    }, async (req) => {
      let res: Response;
      try {
        res = await handle(req);
      } catch (e) {
        if (e instanceof ApiError) res = e.response();
        else if (e instanceof RangeError || e instanceof TypeError) res = new ApiError(400, e.message).response();
        else res = new ApiError(500, `The model failed: ${(e as Error)?.message ?? e}`).response();
      }
      if (options.allowOrigin) {
        for (const [k, v] of Object.entries(cors(options.allowOrigin))) res.headers.set(k, v);
      }
      return res;
    });
  let server: Deno.HttpServer;
  try {
    server = listen();
  } catch (e) {
    await batcher.close();
    if (e instanceof Deno.errors.AddrInUse) {
      throw new Error(
        `Cannot listen on ${options.hostname ?? "127.0.0.1"}:${
          options.port ?? 8000
        }: the address is in use, pick another port`,
      );
    }
    throw e;
  }
  const addr = server.addr as Deno.NetAddr;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;

  let stopping: Promise<void> | undefined;
  const shutdown = (graceMs = 5000): Promise<void> => {
    stopping ??= (async () => {
      closing = true;
      const timer = setTimeout(() => {
        for (const c of inflight) c.cancel();
      }, graceMs);
      try {
        await server.shutdown();
      } finally {
        clearTimeout(timer);
        await batcher.close();
      }
    })();
    return stopping;
  };
  return {
    addr,
    url: `http://${host}:${addr.port}`,
    batcher,
    finished: server.finished.then(() => stopping),
    shutdown,
  };
}
