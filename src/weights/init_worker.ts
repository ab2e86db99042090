/**
 * A worker that draws the seeded parameters ({@linkcode seededParameters}) and posts them one by
 * one (transferring their memory), at most two ahead of the consumer, so that drawing runs on
 * its own thread while the main thread uploads and compiles.
 *
 * Messages in: `{ type: "start", config, seed, part }` (see {@linkcode seededParameters}), then `{ type: "ack" }` per tensor consumed, and
 * `{ type: "recycle", data }` with a tensor's array once the consumer is done with it.
 * Messages out: `{ type: "tensor", tensor }` per tensor, `{ type: "done" }`, or `{ type: "error", message }`.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import type { GPTConfig } from "./config.ts";
import { Float32Pool, type NamedTensor, seededParameters } from "./init.ts";

let source: Generator<NamedTensor> | undefined;
let credits = 2;
const pool = new Float32Pool();

function pump(): void {
  try {
    while (source && credits > 0) {
      const next = source.next();
      if (next.done) {
        source = undefined;
        self.postMessage({ type: "done" });
        return;
      }
      credits--;
      self.postMessage({ type: "tensor", tensor: next.value }, [next.value.data.buffer as ArrayBuffer]);
    }
  } catch (e) {
    source = undefined;
    self.postMessage({ type: "error", message: (e as Error).message });
  }
}

self.onmessage = (
  e: MessageEvent<{
    type: string;
    config?: Required<GPTConfig>;
    seed?: number;
    part?: "all" | "embeddings" | "rest";
    data?: Float32Array;
  }>,
) => {
  if (e.data.type === "start") {
    source = seededParameters(e.data.config!, e.data.seed!, pool.take, e.data.part ?? "all");
    pump();
  } else if (e.data.type === "recycle") {
    pool.give(e.data.data!);
  } else if (e.data.type === "ack") {
    credits++;
    pump();
  }
};
