/**
 * A small HTTP/1.1 server over a TCP listener, for the completions server: unlike `Deno.serve`, it
 * bounds how long a client may take to send its headers and its body and how long an idle
 * connection stays open, notices a client that hangs up while its request runs (the request's
 * `signal` aborts), and can close every connection at once when the server stops. Request bodies
 * are read whole before the handler runs (they are small JSON); responses are sent with a length,
 * or chunked when they are event streams.
 *
 * @module
 */

import { concat, enc, type Head, HttpParseError, Input, parseHead, readBody, writeAll } from "./_http1_read.ts";

export { HttpParseError };

/** Time limits and sizes of the server's connections. */
export interface Http1Limits {
  /** From a request's first byte to the end of its headers (ms). */
  headerTimeoutMs: number;
  /** From the end of the headers to the end of the body (ms). */
  bodyTimeoutMs: number;
  /** How long a connection may wait for its next request (ms). */
  idleTimeoutMs: number;
  /** How long one write to a client may take before the connection is dropped (ms). */
  writeTimeoutMs: number;
  /** Largest header block in bytes (431 past it). */
  maxHeaderBytes: number;
  /** Largest body in bytes (413 past it). */
  maxBodyBytes: number;
}

/** The default limits: 10 s for headers, 30 s for a body, 30 s idle, 30 s a write, 16 KiB of headers, 1 MiB of body. */
export const HTTP1_LIMITS: Http1Limits = {
  headerTimeoutMs: 10_000,
  bodyTimeoutMs: 30_000,
  idleTimeoutMs: 30_000,
  writeTimeoutMs: 30_000,
  maxHeaderBytes: 16 << 10,
  maxBodyBytes: 1 << 20,
};

/** Answers a request; its `signal` aborts when the client hangs up. */
export type Http1Handler = (req: Request) => Promise<Response>;

/** Answers a request that could not be read (400, 408, 413, 431, 501, 505). */
export type Http1ErrorResponder = (e: HttpParseError) => Response;

/** A running server. */
export interface Http1Server {
  /** Where it listens. */
  readonly addr: Deno.NetAddr;
  /** Resolves when the listener and every connection are closed. */
  readonly finished: Promise<void>;
  /** Requests whose handler runs or whose answer is being sent. */
  readonly busy: number;
  /** Stops accepting; closes idle connections and those still sending a request; answers in flight finish. */
  stop(): void;
  /** Closes every connection now. */
  closeAll(): void;
}

/**
 * Runs `work` until `ms` pass; then `onTimeout` (which closes the connection) and a rejection: a
 * 408 for a client too slow to send `what`, or, with `what` undefined (a write to a client that
 * stopped reading), an error that is not answered, since the connection is gone.
 */
async function within<T>(ms: number, work: Promise<T>, onTimeout: () => void, what?: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) =>
    timer = setTimeout(() => {
      onTimeout();
      reject(
        what === undefined
          ? new Error(`The client read nothing for ${ms / 1000} s`)
          : new HttpParseError(408, `The client took over ${ms / 1000} s to send ${what}`),
      );
    }, ms)
  );
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A listener, its connections, and what each is doing. */
class Server implements Http1Server {
  readonly addr: Deno.NetAddr;
  readonly finished: Promise<void>;
  busy = 0;
  #listener: Deno.TcpListener;
  #conns = new Map<Deno.Conn, { idle: boolean }>();
  #stopping = false;
  #handler: Http1Handler;
  #onBad: Http1ErrorResponder;
  #limits: Http1Limits;

  constructor(listener: Deno.TcpListener, handler: Http1Handler, onBad: Http1ErrorResponder, limits: Http1Limits) {
    this.#listener = listener;
    this.addr = listener.addr;
    this.#handler = handler;
    this.#onBad = onBad;
    this.#limits = limits;
    this.finished = this.#accept();
  }

  async #accept(): Promise<void> {
    const open = new Set<Promise<void>>();
    try {
      for await (const conn of this.#listener) {
        if (this.#stopping) {
          conn.close();
          continue;
        }
        const p = this.#serve(conn).finally(() => open.delete(p));
        open.add(p);
      }
    } catch { /* the listener was closed */ }
    while (open.size > 0) await Promise.all(open);
  }

  stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    try {
      this.#listener.close();
    } catch { /* closed */ }
    for (const [conn, s] of this.#conns) if (s.idle) close(conn);
  }

  closeAll(): void {
    this.stop();
    for (const conn of this.#conns.keys()) close(conn);
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    const state = { idle: true };
    this.#conns.set(conn, state);
    try {
      (conn as Deno.TcpConn).setNoDelay?.(true);
    } catch { /* not TCP */ }
    const input = new Input(conn);
    try {
      while (!this.#stopping) {
        state.idle = true;
        const head = await this.#readHead(conn, input);
        if (!head) break;
        const keep = await this.#exchange(conn, input, head, state);
        if (!keep) break;
      }
    } catch (e) {
      if (e instanceof HttpParseError && !input.eof) {
        await this.#write(conn, this.#onBad(e), { head: false, keep: false }).catch(() => {});
      }
    } finally {
      this.#conns.delete(conn);
      close(conn);
    }
  }

  /** The next request's head; undefined when the client closed or stayed idle too long. */
  async #readHead(conn: Deno.Conn, input: Input): Promise<Head | undefined> {
    const L = this.#limits;
    if (input.size === 0) {
      const got = await within(L.idleTimeoutMs, input.more(), () => close(conn), "a request").catch(() => false);
      if (!got) return undefined;
    }
    const read = async () => {
      let end: number;
      while ((end = input.headEnd()) < 0) {
        if (input.size > L.maxHeaderBytes) throw new HttpParseError(431, "The request's headers are too large");
        if (!await input.more()) throw new HttpParseError(400, "The connection closed inside the request's headers");
      }
      if (end > L.maxHeaderBytes) throw new HttpParseError(431, "The request's headers are too large");
      return parseHead(new TextDecoder().decode(input.take(end + 4)).slice(0, end));
    };
    return await within(L.headerTimeoutMs, read(), () => close(conn), "its headers");
  }

  /** Reads the body, runs the handler, writes the answer; whether the connection stays open. */
  async #exchange(conn: Deno.Conn, input: Input, head: Head, state: { idle: boolean }): Promise<boolean> {
    const L = this.#limits;
    // a body that is too large or too slow is answered (413, 408) and the connection closed unread
    const body = await within(L.bodyTimeoutMs, readBody(conn, input, head, L.maxBodyBytes), () => {}, "its body");
    const gone = new AbortController();
    let req: Request;
    try {
      const url = /^https?:\/\//.test(head.target)
        ? head.target
        : `http://${head.headers.get("host") ?? "localhost"}${head.target.startsWith("/") ? "" : "/"}${head.target}`;
      req = new Request(url, {
        method: head.method,
        headers: head.headers,
        body: body as BodyInit,
        signal: gone.signal,
      });
    } catch {
      throw new HttpParseError(400, `The request target '${head.target.slice(0, 80)}' is not a valid URL`);
    }
    // a read while the handler runs: the end of the stream means the client hung up
    if (input.size === 0) input.more().then((more) => more || gone.abort());
    if (this.#stopping) throw new HttpParseError(503, "The server is shutting down; retry on another one");
    state.idle = false;
    this.busy++;
    try {
      const res = await this.#handler(req).catch(() =>
        this.#onBad(new HttpParseError(500, "The server failed to answer; its log has the details"))
      );
      const keep = !this.#stopping && head.version === "1.1" &&
        head.headers.get("connection")?.toLowerCase() !== "close" && !input.eof;
      return await this.#write(conn, res, { head: head.method === "HEAD", keep, signal: gone });
    } finally {
      this.busy--;
    }
  }

  /** Writes a response; whether the connection may be kept. */
  async #write(
    conn: Deno.Conn,
    res: Response,
    o: { head: boolean; keep: boolean; signal?: AbortController },
  ): Promise<boolean> {
    const streamed = (res.headers.get("content-type") ?? "").startsWith("text/event-stream") && !o.head;
    const bytes = streamed || res.body === null ? undefined : new Uint8Array(await res.arrayBuffer());
    const lines = [`HTTP/1.1 ${res.status} ${res.statusText || reason(res.status)}`];
    for (const [k, v] of res.headers) if (k !== "content-length" && k !== "connection") lines.push(`${k}: ${v}`);
    if (streamed) lines.push("transfer-encoding: chunked");
    else if (res.status !== 204 && res.status !== 304) lines.push(`content-length: ${bytes?.length ?? 0}`);
    lines.push(`connection: ${o.keep ? "keep-alive" : "close"}`);
    const put = (b: Uint8Array) => within(this.#limits.writeTimeoutMs, writeAll(conn, b), () => close(conn));
    if (!streamed) {
      await put(concat(enc.encode(lines.join("\r\n") + "\r\n\r\n"), o.head || !bytes ? new Uint8Array(0) : bytes));
      return o.keep;
    }
    const reader = res.body!.getReader();
    try {
      await put(enc.encode(lines.join("\r\n") + "\r\n\r\n"));
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        if (value.length > 0) {
          await put(concat(enc.encode(`${value.length.toString(16)}\r\n`), value, enc.encode("\r\n")));
        }
      }
      await put(enc.encode("0\r\n\r\n"));
      return o.keep;
    } catch (e) {
      // the client went away (or stopped reading): the stream's producer is told
      o.signal?.abort();
      await reader.cancel(e).catch(() => {});
      return false;
    }
  }
}

function close(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}

function reason(status: number): string {
  const text: Record<number, string> = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
  };
  return text[status] ?? "Status";
}

/**
 * Listens on `hostname:port` and answers each request with `handler`.
 *
 * @param o Address, handler, the answer to unreadable requests, and limits.
 * @returns The server, listening.
 * @throws {Deno.errors.AddrInUse} When the address is taken.
 */
export function listenHttp1(o: {
  hostname: string;
  port: number;
  handler: Http1Handler;
  onBadRequest: Http1ErrorResponder;
  limits?: Partial<Http1Limits>;
}): Http1Server {
  const listener = Deno.listen({ hostname: o.hostname, port: o.port, transport: "tcp" });
  return new Server(listener, o.handler, o.onBadRequest, { ...HTTP1_LIMITS, ...o.limits });
}
