/**
 * Reading HTTP/1.1 requests off a connection (for `_http1.ts`): bytes read ahead into a buffer,
 * the request line and headers, and the body by `Content-Length` or chunks. Anything malformed is
 * an {@linkcode HttpParseError} carrying the status to answer with.
 *
 * @module
 */

/** A request that cannot be read: the status and the sentence to answer with, then the connection closes. */
export class HttpParseError extends Error {
  /** The status to answer with. */
  readonly status: number;

  /**
   * @param status The status.
   * @param message One sentence.
   */
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export const enc = new TextEncoder();
const CRLF2 = [13, 10, 13, 10];

/** Bytes from a connection, read ahead into a buffer; at most one read is ever pending. */
export class Input {
  #conn: Deno.Conn;
  #buf = new Uint8Array(0);
  #pending: Promise<boolean> | undefined;
  eof = false;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  get size(): number {
    return this.#buf.length;
  }

  /** Reads more; false at the end of the stream. */
  more(): Promise<boolean> {
    this.#pending ??= (async () => {
      const chunk = new Uint8Array(16 << 10);
      const n = await this.#conn.read(chunk).catch(() => null);
      this.#pending = undefined;
      if (n === null) {
        this.eof = true;
        return false;
      }
      const next = new Uint8Array(this.#buf.length + n);
      next.set(this.#buf);
      next.set(chunk.subarray(0, n), this.#buf.length);
      this.#buf = next;
      return true;
    })();
    return this.#pending;
  }

  /** The index of `\r\n\r\n` (or -1). */
  headEnd(): number {
    const b = this.#buf;
    outer: for (let i = 0; i + 3 < b.length; i++) {
      for (let k = 0; k < 4; k++) if (b[i + k] !== CRLF2[k]) continue outer;
      return i;
    }
    return -1;
  }

  /** The index of the next `\r\n` (or -1). */
  lineEnd(): number {
    for (let i = 0; i + 1 < this.#buf.length; i++) if (this.#buf[i] === 13 && this.#buf[i + 1] === 10) return i;
    return -1;
  }

  /** Takes `n` bytes off the front. */
  take(n: number): Uint8Array {
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }
}

/** A request's head, parsed. */
export interface Head {
  method: string;
  target: string;
  version: string;
  headers: Headers;
}

export function parseHead(text: string): Head {
  const lines = text.split("\r\n");
  const m = /^([A-Z]+) (\S+) HTTP\/(\d\.\d)$/.exec(lines[0]);
  if (!m) throw new HttpParseError(400, "The request line is not 'METHOD /path HTTP/1.1'");
  if (m[3] !== "1.1" && m[3] !== "1.0") throw new HttpParseError(505, `HTTP/${m[3]} is not supported; use HTTP/1.1`);
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    const h = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/.exec(line);
    if (!h) throw new HttpParseError(400, "A request header is malformed");
    try {
      headers.append(h[1], h[2]);
    } catch {
      throw new HttpParseError(400, `The request header '${h[1]}' has a value that is not allowed`);
    }
  }
  if (m[3] === "1.1" && !headers.has("host")) throw new HttpParseError(400, "The request has no Host header");
  return { method: m[1], target: m[2], version: m[3], headers };
}

/** Reads the whole body: by `content-length` or chunked; 100-continue first when asked. */
export async function readBody(
  conn: Deno.Conn,
  input: Input,
  head: Head,
  limit: number,
): Promise<Uint8Array | undefined> {
  const te = head.headers.get("transfer-encoding");
  const cl = head.headers.get("content-length");
  if (te !== null && cl !== null) throw new HttpParseError(400, "The request has both Content-Length and chunks");
  if (te !== null && te.toLowerCase() !== "chunked") {
    throw new HttpParseError(501, `Transfer-Encoding '${te}' is not supported; send chunked or a Content-Length`);
  }
  if (cl !== null && !/^\d+$/.test(cl)) throw new HttpParseError(400, `Content-Length '${cl}' is not a number`);
  const length = cl === null ? 0 : Number(cl);
  if (length > limit) throw new HttpParseError(413, `The request body is over ${limit} bytes; send a smaller one`);
  if (te === null && length === 0) {
    return head.method === "GET" || head.method === "HEAD" ? undefined : new Uint8Array();
  }
  if (head.headers.get("expect")?.toLowerCase() === "100-continue") {
    await writeAll(conn, enc.encode("HTTP/1.1 100 Continue\r\n\r\n"));
  }
  const need = async (n: number) => {
    while (input.size < n) {
      if (!await input.more()) throw new HttpParseError(400, "The connection closed inside the request's body");
    }
  };
  if (te === null) {
    await need(length);
    return input.take(length);
  }
  const parts: Uint8Array[] = [];
  let size = 0;
  while (true) {
    let end: number;
    while ((end = input.lineEnd()) < 0) {
      if (input.size > 1024) throw new HttpParseError(400, "A chunk's size line is too long");
      await need(input.size + 1);
    }
    const line = new TextDecoder().decode(input.take(end + 2)).slice(0, end);
    const n = parseInt(line.split(";")[0].trim(), 16);
    if (!/^[0-9a-fA-F]+/.test(line) || !Number.isSafeInteger(n)) {
      throw new HttpParseError(400, "A chunk's size is not hexadecimal");
    }
    if (n === 0) break;
    size += n;
    if (size > limit) throw new HttpParseError(413, `The request body is over ${limit} bytes; send a smaller one`);
    await need(n + 2);
    parts.push(input.take(n));
    input.take(2);
  }
  // trailers, up to the empty line
  while (true) {
    let end: number;
    while ((end = input.lineEnd()) < 0) await need(input.size + 1);
    input.take(end + 2);
    if (end === 0) break;
  }
  return concat(...parts);
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let n = 0; n < bytes.length;) n += await conn.write(bytes.subarray(n));
}
