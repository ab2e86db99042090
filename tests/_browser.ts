// Headless Chromium driven over the DevTools protocol (a WebSocket, no npm package): open a page,
// evaluate expressions in it, take a screenshot. For the playground test and its screenshot.

const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

/** A page in a headless browser. */
export class Browser {
  #proc: Deno.ChildProcess;
  #ws: WebSocket;
  #session = "";
  #id = 0;
  #waiting = new Map<number, { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  #dir: string;

  private constructor(proc: Deno.ChildProcess, ws: WebSocket, dir: string) {
    this.#proc = proc;
    this.#ws = ws;
    this.#dir = dir;
    ws.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      const w = this.#waiting.get(m.id);
      if (!w) return;
      this.#waiting.delete(m.id);
      if (m.error) w.reject(new Error(`${m.error.message} (${m.error.code})`));
      else w.resolve(m.result);
    };
  }

  /** Starts Chromium headless (as the machine's probe does: no sandbox, no background networking). */
  static async launch(): Promise<Browser> {
    const exe = CHROMIUM.find((p) => {
      try {
        return Deno.statSync(p).isFile;
      } catch {
        return false;
      }
    });
    if (!exe) throw new Error("No Chromium found; install Debian's chromium (bash .ci/setup.sh --test does)");
    const dir = await Deno.makeTempDir({ prefix: "chromium-" });
    const proc = new Deno.Command(exe, {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1200,900",
        `--user-data-dir=${dir}`,
        "--remote-debugging-port=0",
        "about:blank",
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
    const reader = proc.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    let url: string | undefined;
    const deadline = Date.now() + 30_000;
    while (!url && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
      url = /DevTools listening on (ws:\/\/\S+)/.exec(seen)?.[1];
    }
    // keep draining stderr so that Chromium never blocks on it
    (async () => {
      while (!(await reader.read()).done);
    })().catch(() => {});
    if (!url) {
      proc.kill();
      throw new Error(`Chromium did not start: ${seen.slice(-500)}`);
    }
    const ws = new WebSocket(url);
    await new Promise((res, rej) => {
      ws.onopen = res;
      ws.onerror = () => rej(new Error("cannot reach Chromium's DevTools socket"));
    });
    return new Browser(proc, ws, dir);
  }

  /** Sends a DevTools command (to the page once one is open). */
  send(method: string, params: Record<string, unknown> = {}, page = true): Promise<Record<string, unknown>> {
    const id = ++this.#id;
    const msg: Record<string, unknown> = { id, method, params };
    if (page && this.#session) msg.sessionId = this.#session;
    this.#ws.send(JSON.stringify(msg));
    return new Promise((resolve, reject) => this.#waiting.set(id, { resolve, reject }));
  }

  /** Opens a page and waits for it to load. */
  async open(url: string): Promise<void> {
    const { targetId } = await this.send("Target.createTarget", { url: "about:blank" }, false);
    const { sessionId } = await this.send("Target.attachToTarget", { targetId, flatten: true }, false);
    this.#session = sessionId as string;
    await this.send("Page.enable");
    await this.send("Page.navigate", { url });
    await this.waitFor("document.readyState === 'complete'", 30_000);
  }

  /** The value of an expression in the page (awaited when it is a promise). */
  async eval<T = unknown>(expression: string): Promise<T> {
    const r = await this.send("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true });
    const ex = r.exceptionDetails as { text?: string; exception?: { description?: string } } | undefined;
    if (ex) throw new Error(`in the page: ${ex.exception?.description ?? ex.text}`);
    return (r.result as { value: T }).value;
  }

  /** Waits until an expression is truthy in the page. */
  async waitFor(expression: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await this.eval<boolean>(`Boolean(${expression})`))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${expression}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** A PNG of the page. */
  async screenshot(): Promise<Uint8Array> {
    const { data } = await this.send("Page.captureScreenshot", { format: "png" });
    return Uint8Array.from(atob(data as string), (c) => c.charCodeAt(0));
  }

  /** Closes the browser. */
  async close(): Promise<void> {
    try {
      await Promise.race([this.send("Browser.close", {}, false), new Promise((r) => setTimeout(r, 2000))]);
    } catch { /* already closing */ }
    this.#ws.close();
    try {
      this.#proc.kill();
    } catch { /* it exited */ }
    await this.#proc.status;
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }
}
