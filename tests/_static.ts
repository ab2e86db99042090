// A plain static file server on loopback for the tests: files from a folder, single-range
// requests (206) unless turned off, HEAD, and a log of what was asked.

/** A running static server. */
export interface StaticServer {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** `"GET /path bytes=0-7"` per request. */
  log: string[];
  /** Stops it. */
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  json: "application/json",
};

/**
 * Serves `root` on 127.0.0.1.
 *
 * @param root The folder.
 * @param o `ranges: false` answers every request with the whole file (a server without Range support).
 */
export function serveStatic(root: string, o: { ranges?: boolean } = {}): StaticServer {
  const log: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    const range = req.headers.get("range");
    log.push(`${req.method} ${path}${range ? ` ${range}` : ""}`);
    if (path.includes("..")) return new Response(null, { status: 400 });
    const file = path.endsWith("/") ? `${path}index.html` : path;
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = await Deno.readFile(`${root}${file}`);
    } catch {
      return new Response("not found", { status: 404 });
    }
    const type = TYPES[file.split(".").pop() ?? ""] ?? "application/octet-stream";
    const m = /^bytes=(\d+)-(\d*)$/.exec(range ?? "");
    if (m && o.ranges !== false) {
      const from = Number(m[1]);
      const to = Math.min(m[2] ? Number(m[2]) : bytes.length - 1, bytes.length - 1);
      if (from >= bytes.length) return new Response(null, { status: 416 });
      return new Response(req.method === "HEAD" ? null : bytes.slice(from, to + 1), {
        status: 206,
        headers: { "content-type": type, "content-range": `bytes ${from}-${to}/${bytes.length}` },
      });
    }
    return new Response(req.method === "HEAD" ? null : bytes, { headers: { "content-type": type } });
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, log, close: () => server.shutdown() };
}
