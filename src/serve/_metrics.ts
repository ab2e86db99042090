/**
 * `GET /metrics` in Prometheus' text format, through `prom-client` (loaded when the server starts:
 * it needs Node's modules, which the library's import graph must not, so that it loads in pages).
 * Names follow Prometheus' conventions (`_total` counters, `_seconds` histograms), with vLLM's
 * meanings: requests by finish reason, running and waiting, prompt and generated tokens, time to
 * first token, time between tokens, end-to-end latency, cache slots in use, prompt cache hits.
 *
 * @module
 */

import type { ServingBackend } from "./serving_backend.ts";

type PromClient = typeof import("prom-client");

/** What the metrics need of a finished request. */
export interface FinishedRequest {
  /** When it was accepted (`performance.now()`). */
  startedAt: number;
  /** Prompt tokens (each prompt once). */
  promptTokens: number;
  /** Of those, the ones the prompt cache gave. */
  cachedTokens: number;
  /** Each choice: when each of its tokens arrived, and why it ended. */
  choices: { times: number[]; finish: string }[];
}

const LATENCY = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80];
const TOKEN_GAP = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2.5];

/** The server's metrics. */
export class Metrics {
  /** The format's content type. */
  readonly contentType: string;
  #registry: InstanceType<PromClient["Registry"]>;
  #requests;
  #promptTokens;
  #cacheHits;
  #cachedTokens;
  #generationTokens;
  #ttft;
  #gap;
  #e2e;

  private constructor(prom: PromClient, backend: ServingBackend) {
    const registers = [this.#registry = new prom.Registry()];
    this.contentType = this.#registry.contentType;
    const p = "gpt_webgpu_";
    this.#requests = new prom.Counter({
      name: `${p}requests_total`,
      help: "Finished requests (each choice), by finish reason: stop, length, cancelled.",
      labelNames: ["finish_reason"],
      registers,
    });
    // gauges read the backend when scraped
    const gauges: [string, string, () => number][] = [
      ["requests_running", "Requests decoding now.", () => backend.active],
      ["requests_waiting", "Requests waiting for a slot.", () => backend.queued],
      ["cache_slots_used", "Key/value cache slots (batch rows) in use.", () => backend.active],
      ["cache_slots", "Key/value cache slots (batch rows) in all.", () => backend.slots],
    ];
    for (const [name, help, read] of gauges) {
      new prom.Gauge({
        name: `${p}${name}`,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    }
    this.#promptTokens = new prom.Counter({ name: `${p}prompt_tokens_total`, help: "Prompt tokens.", registers });
    this.#cacheHits = new prom.Counter({
      name: `${p}prompt_cache_hits_total`,
      help: "Requests whose prompt began with tokens the prompt cache held.",
      registers,
    });
    this.#cachedTokens = new prom.Counter({
      name: `${p}prompt_cache_tokens_total`,
      help: "Prompt tokens taken from the prompt cache instead of computed.",
      registers,
    });
    this.#generationTokens = new prom.Counter({
      name: `${p}generation_tokens_total`,
      help: "Generated tokens.",
      registers,
    });
    this.#ttft = new prom.Histogram({
      name: `${p}time_to_first_token_seconds`,
      help: "From a request's arrival to its first token.",
      buckets: LATENCY,
      registers,
    });
    this.#gap = new prom.Histogram({
      name: `${p}inter_token_latency_seconds`,
      help: "Between a choice's successive tokens (a chunk's tokens share its time).",
      buckets: TOKEN_GAP,
      registers,
    });
    this.#e2e = new prom.Histogram({
      name: `${p}e2e_request_latency_seconds`,
      help: "From a request's arrival to its end.",
      buckets: LATENCY,
      registers,
    });
  }

  /**
   * Loads `prom-client` and registers the metrics.
   *
   * @param backend Where running and waiting requests are counted.
   * @returns The metrics.
   */
  static async create(backend: ServingBackend): Promise<Metrics> {
    const prom = await import("prom-client");
    return new Metrics((prom as { default?: PromClient }).default ?? prom, backend);
  }

  /**
   * Counts a finished request.
   *
   * @param r Its times and counts.
   */
  finished(r: FinishedRequest): void {
    const now = performance.now();
    this.#promptTokens.inc(r.promptTokens);
    if (r.cachedTokens > 0) this.#cacheHits.inc();
    this.#cachedTokens.inc(r.cachedTokens);
    this.#e2e.observe((now - r.startedAt) / 1000);
    for (const c of r.choices) {
      this.#requests.inc({ finish_reason: c.finish });
      this.#generationTokens.inc(c.times.length);
      if (c.times.length > 0) this.#ttft.observe((c.times[0] - r.startedAt) / 1000);
      for (let i = 1; i < c.times.length; i++) this.#gap.observe((c.times[i] - c.times[i - 1]) / 1000);
    }
  }

  /** The metrics, in the text format. */
  async text(): Promise<string> {
    return await this.#registry.metrics();
  }
}
