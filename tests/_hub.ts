// A loopback stand-in for the Hugging Face hub, as its clients see it (HEAD and GET on /resolve/,
// ETag and X-Repo-Commit for small files, a 302 with X-Linked-Etag and X-Linked-Size for LFS files,
// Range requests, relative redirects for renamed repositories), and the ways a network fails.
import { TESTDATA } from "./_helpers.ts";

export const COMMIT = "0123456789abcdef0123456789abcdef01234567";
export const CONFIG = await Deno.readFile(`${TESTDATA}tiny_hf_gpt2/config.json`);
export const WEIGHTS = await Deno.readFile(`${TESTDATA}tiny_hf_gpt2/model.safetensors`);
export const SHA = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", WEIGHTS)))
  .map((b) => b.toString(16).padStart(2, "0")).join("");
export const CONFIG_ETAG = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";

/** A running stand-in. */
export type HubMode =
  | "corrupt" // the LFS body has one byte changed
  | "nosize-cut" // no size announced, and the body ends early (cleanly)
  | "long" // the LFS body has bytes past X-Linked-Size
  | "stall-head" // HEAD never answers
  | "stall-body" // the LFS body sends a part, then nothing
  | "loop" // the LFS URL redirects to itself
  | "dead-lfs" // the LFS URL is a closed port
  | "dot-etag"; // the LFS file's ETag is ".."

export interface Hub {
  url: string;
  requests: string[];
  /** Cut the next LFS download after this many bytes. */
  cutAfter?: number;
  /** How the hub misbehaves from now on (default: not at all). */
  mode?: HubMode;
  /** A port nothing listens on. */
  deadPort?: number;
  close(): Promise<void>;
}

/** Serves `owner/tiny` (and `tiny`, renamed to it), `owner/gated` (token "secret"), `owner/binonly`, `owner/llama`. */
export function startHub(): Hub {
  const requests: string[] = [];
  const hub: Partial<Hub> = { requests };
  // stalled answers, ended when the stand-in closes
  const stalls: (() => void)[] = [];
  // like the real hub, it lets pages of any origin read its files
  const cors = async (r: Response | Promise<Response>) => {
    const res = await r;
    res.headers.set("access-control-allow-origin", "*");
    res.headers.set("access-control-expose-headers", "content-length, content-range, etag, x-repo-commit");
    return res;
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => cors(handle(req)));
  const handle = (req: Request): Response | Promise<Response> => {
    const u = new URL(req.url);
    requests.push(`${req.method} ${u.pathname}${req.headers.get("range") ? ` ${req.headers.get("range")}` : ""}`);
    if (u.pathname === `/lfs/${SHA}`) {
      if (hub.mode === "loop") return new Response(null, { status: 302, headers: { location: u.pathname } });
      if (hub.mode === "stall-body") {
        const stream = new ReadableStream<Uint8Array>({
          start: (c) => c.enqueue(WEIGHTS.slice(0, 100)),
          pull: (c) =>
            new Promise<void>((r) =>
              stalls.push(() => {
                try {
                  c.close();
                } catch { /* the client left */ }
                r();
              })
            ),
        });
        return new Response(stream, { headers: { "content-length": String(WEIGHTS.length) } });
      }
      if (hub.mode === "corrupt" || hub.mode === "nosize-cut" || hub.mode === "long") {
        const bytes = hub.mode === "corrupt"
          ? WEIGHTS.map((b, i) => i === WEIGHTS.length >> 1 ? b ^ 1 : b)
          : hub.mode === "long"
          ? new Uint8Array([...WEIGHTS, 1, 2, 3, 4])
          : WEIGHTS.slice(0, WEIGHTS.length - 1000);
        // a stream: no content-length of its own
        return new Response(new Blob([bytes]).stream());
      }
      const range = /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
      const start = range ? Number(range[1]) : 0;
      if (start >= WEIGHTS.length) return new Response(null, { status: 416 });
      const body = WEIGHTS.subarray(start);
      const cut = hub.cutAfter;
      hub.cutAfter = undefined;
      let sent = false;
      const stream = new ReadableStream<Uint8Array>({
        async pull(c) {
          if (cut === undefined) {
            c.enqueue(body);
            c.close();
          } else if (!sent) {
            sent = true;
            c.enqueue(body.slice(0, cut));
          } else {
            // the first part has gone out: now the connection breaks
            await new Promise((r) => setTimeout(r, 200));
            c.error(new Error("connection reset"));
          }
        },
      });
      const headers: Record<string, string> = { "content-length": String(body.length) };
      if (range) headers["content-range"] = `bytes ${start}-${WEIGHTS.length - 1}/${WEIGHTS.length}`;
      return new Response(req.method === "HEAD" ? null : stream, { status: range ? 206 : 200, headers });
    }
    if (hub.mode === "stall-head" && req.method === "HEAD") {
      return new Promise<Response>((r) => stalls.push(() => r(new Response(null, { status: 503 }))));
    }
    const m = /^\/(.+)\/resolve\/([^/]+)\/(.+)$/.exec(u.pathname);
    if (!m) return new Response("not found", { status: 404 });
    const [, repo, rev, file] = m;
    if (repo === "tiny") {
      return new Response(null, { status: 307, headers: { location: `/owner/tiny/resolve/${rev}/${file}` } });
    }
    const known = ["owner/tiny", "owner/gated", "owner/binonly", "owner/llama"];
    if (!known.includes(repo)) return new Response(null, { status: 404, headers: { "x-error-code": "RepoNotFound" } });
    if (repo === "owner/gated" && req.headers.get("authorization") !== "Bearer secret") {
      return new Response(null, { status: 401, headers: { "x-error-code": "GatedRepo" } });
    }
    if (rev !== "main" && rev !== COMMIT) {
      return new Response(null, { status: 404, headers: { "x-error-code": "RevisionNotFound" } });
    }
    const common = { "x-repo-commit": COMMIT };
    if (file === "config.json") {
      const body = repo === "owner/llama" ? new TextEncoder().encode('{"model_type": "llama"}') : CONFIG;
      return new Response(req.method === "HEAD" ? null : body, {
        headers: { ...common, etag: `"${CONFIG_ETAG}"`, "content-length": String(body.length) },
      });
    }
    if (file === "model.safetensors" && repo !== "owner/binonly") {
      return new Response(null, {
        status: 302,
        headers: {
          ...common,
          location: hub.mode === "dead-lfs" ? `http://127.0.0.1:${hub.deadPort}/lfs/${SHA}` : `${u.origin}/lfs/${SHA}`,
          "x-linked-etag": hub.mode === "dot-etag" ? '".."' : `"${SHA}"`,
          ...(hub.mode === "nosize-cut" ? {} : { "x-linked-size": String(WEIGHTS.length) }),
        },
      });
    }
    return new Response(null, { status: 404, headers: { "x-error-code": "EntryNotFound" } });
  };
  hub.url = `http://127.0.0.1:${server.addr.port}`;
  // a port nothing listens on
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  hub.deadPort = probe.addr.port;
  probe.close();
  hub.close = async () => {
    for (const end of stalls.splice(0)) end();
    await server.shutdown();
  };
  return hub as Hub;
}
