// Headless Chromium (Debian's) driven by puppeteer-core, with WebGPU on (SwiftShader): open a page,
// evaluate expressions in it, take a screenshot. For the playground and browser tests.
import puppeteer, { type Browser as PBrowser, type Page } from "puppeteer-core";

const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

/** A page in a headless browser. */
export class Browser {
  #browser: PBrowser;
  #page?: Page;
  /** What the page printed to its console, and its uncaught errors. */
  readonly console: string[] = [];

  private constructor(browser: PBrowser) {
    this.#browser = browser;
  }

  /** Starts Chromium headless, with WebGPU (SwiftShader on a machine without a GPU). */
  static async launch(): Promise<Browser> {
    const exe = CHROMIUM.find((p) => {
      try {
        return Deno.statSync(p).isFile;
      } catch {
        return false;
      }
    });
    if (!exe) throw new Error("No Chromium found; install Debian's chromium (bash .ci/setup.sh --test does)");
    const browser = await puppeteer.launch({
      executablePath: exe,
      headless: true,
      args: ["--no-sandbox", "--enable-unsafe-webgpu", "--disable-background-networking", "--window-size=1200,900"],
      defaultViewport: { width: 1200, height: 900 },
    });
    return new Browser(browser);
  }

  /** Opens a page and waits for it to load. */
  async open(url: string): Promise<void> {
    this.#page ??= await this.#browser.newPage();
    this.#page.on("console", (m) => this.console.push(`${m.type()}: ${m.text()}`));
    this.#page.on("pageerror", (e) => this.console.push(`error: ${(e as Error).message}`));
    await this.#page.goto(url, { waitUntil: "load", timeout: 30_000 });
  }

  /** The value of an expression in the page (awaited when it is a promise). */
  async eval<T = unknown>(expression: string): Promise<T> {
    if (!this.#page) throw new Error("open a page first");
    return await this.#page.evaluate(expression) as T;
  }

  /** Waits until an expression is truthy in the page. */
  async waitFor(expression: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await this.eval<boolean>(`Boolean(${expression})`))) {
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${expression}; the page's console:\n${this.console.join("\n")}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** A PNG of the page. */
  async screenshot(): Promise<Uint8Array> {
    if (!this.#page) throw new Error("open a page first");
    return await this.#page.screenshot({ type: "png" });
  }

  /** Closes the browser. */
  async close(): Promise<void> {
    await this.#browser.close().catch(() => {});
  }
}
