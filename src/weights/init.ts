/**
 * The book's `GPTModel` parameters drawn as `torch.manual_seed(seed); GPTModel(cfg)` draws them,
 * one tensor at a time, in creation order.
 *
 * @module
 */

import type { GPTConfig } from "./config.ts";
import { linearBiasBound, linearWeightBound, normalDraws, TorchGenerator } from "./torch_random.ts";

/** One named parameter in PyTorch's layout (`nn.Linear` weights are `[out, in]`). */
export interface NamedTensor {
  /** The `state_dict` name, e.g. `trf_blocks.0.att.W_query.weight`. */
  name: string;
  /** The shape, outermost first. */
  shape: number[];
  /** The values, row-major. */
  data: Float32Array;
  /** When set, `data` holds only rows `row0 ..` of the tensor; the next piece follows. */
  row0?: number;
  /**
   * When set, the consumer calls it once it no longer reads `data`, so that the producer can
   * reuse that memory for a later tensor.
   */
  release?: () => void;
}

/** Rows per piece when the vocabulary-sized tensors are drawn in pieces. */
const PIECE_ROWS = 512;

/**
 * Yields every parameter of the book's `GPTModel` in the order PyTorch creates it, drawing each
 * from a generator seeded like `torch.manual_seed(seed)`. The token embedding and the output head
 * come in pieces of rows (see {@linkcode NamedTensor.row0}), so that no copy of them is held whole. LayerNorm parameters (ones and zeros)
 * come after the draws of their block, as they draw nothing.
 *
 * @param cfg The model configuration.
 * @param seed The seed given to `torch.manual_seed`.
 * @param alloc Where the arrays of the large tensors come from (default: fresh ones).
 * @param part All parameters, only the two embeddings, or only the rest (which skips the
 *   embeddings' draws; see {@linkcode embeddingDraws}).
 * @returns An iterator over the parameters.
 * @throws {RangeError} For `part: "rest"` when the embeddings' draws cannot be counted.
 */
export function* seededParameters(
  cfg: Required<GPTConfig>,
  seed: number,
  alloc: (length: number) => Float32Array = (n) => new Float32Array(n),
  part: "all" | "embeddings" | "rest" = "all",
): Generator<NamedTensor> {
  const g = new TorchGenerator(seed);
  const C = cfg.emb_dim;
  const V = cfg.vocab_size;
  const embedding = (name: string, rows: number): NamedTensor => {
    const data = new Float32Array(rows * C);
    g.normal(data, 0, 1);
    return { name, shape: [rows, C], data };
  };
  // Large tables in pieces of rows. normal_ fills the whole tensor with uniforms and then
  // transforms blocks of 16, so pieces whose sizes are multiples of 16 give the same values;
  // a size that is not a multiple of 16 redraws its tail at the end, so it is drawn whole.
  function* pieces(name: string, rows: number, draw: (a: Float32Array) => void): Generator<NamedTensor> {
    for (let r0 = 0; r0 < rows; r0 += PIECE_ROWS) {
      const data = alloc(Math.min(PIECE_ROWS, rows - r0) * C);
      draw(data);
      yield { name, shape: [rows, C], data, row0: r0 };
    }
  }
  function* linear(name: string, inF: number, outF: number, bias: boolean): Generator<NamedTensor> {
    const w = alloc(outF * inF);
    const wb = linearWeightBound(inF);
    g.uniform(w, -wb, wb);
    yield { name: `${name}.weight`, shape: [outF, inF], data: w };
    if (bias) {
      const b = alloc(outF);
      const bb = linearBiasBound(inF);
      g.uniform(b, -bb, bb);
      yield { name: `${name}.bias`, shape: [outF], data: b };
    }
  }
  const norm = (name: string): NamedTensor[] => [
    { name: `${name}.scale`, shape: [C], data: new Float32Array(C).fill(1) },
    { name: `${name}.shift`, shape: [C], data: new Float32Array(C) },
  ];

  if (part === "rest") {
    const skip = embeddingDraws(cfg);
    if (skip === undefined) throw new RangeError("Cannot draw the parameters after the embeddings: their draws vary");
    g.skip(skip);
  } else {
    if ((PIECE_ROWS * C) % 16 === 0 && (V * C) % 16 === 0) yield* pieces("tok_emb.weight", V, (a) => g.normal(a, 0, 1));
    else yield embedding("tok_emb.weight", V);
    yield embedding("pos_emb.weight", cfg.context_length);
    if (part === "embeddings") return;
  }
  for (let l = 0; l < cfg.n_layers; l++) {
    const p = `trf_blocks.${l}`;
    yield* linear(`${p}.att.W_query`, C, C, cfg.qkv_bias);
    yield* linear(`${p}.att.W_key`, C, C, cfg.qkv_bias);
    yield* linear(`${p}.att.W_value`, C, C, cfg.qkv_bias);
    yield* linear(`${p}.att.out_proj`, C, C, true);
    yield* linear(`${p}.ff.layers.0`, C, 4 * C, true);
    yield* linear(`${p}.ff.layers.2`, 4 * C, C, true);
    yield* norm(`${p}.norm1`);
    yield* norm(`${p}.norm2`);
  }
  yield* norm("final_norm");
  const hb = linearWeightBound(C);
  yield* pieces("out_head.weight", V, (a) => g.uniform(a, -hb, hb));
}

/**
 * How many 32-bit draws the token and position embeddings take, or undefined when that depends
 * on the generator's cached normal (a table of fewer than 16 values).
 *
 * @param cfg The model configuration.
 * @returns The number of draws.
 */
export function embeddingDraws(cfg: Required<GPTConfig>): number | undefined {
  const tok = normalDraws(cfg.vocab_size * cfg.emb_dim);
  const pos = normalDraws(cfg.context_length * cfg.emb_dim);
  return tok === undefined || pos === undefined ? undefined : tok + pos;
}

/**
 * How many 32-bit draws `GPTModel(cfg)` takes from PyTorch's generator: the embeddings' normals,
 * then every linear layer's uniforms (weights, biases) and the head's.
 *
 * @param cfg The model configuration.
 * @returns The number of draws.
 * @throws {RangeError} When a table is under 16 values (its draws depend on the generator's state).
 */
export function parameterDraws(cfg: Required<GPTConfig>): number {
  const emb = embeddingDraws(cfg);
  if (emb === undefined) throw new RangeError("Cannot count the parameters' draws: an embedding has under 16 values");
  const C = cfg.emb_dim;
  const qkv = 3 * (C * C + (cfg.qkv_bias ? C : 0));
  const block = qkv + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C);
  return emb + cfg.n_layers * block + cfg.vocab_size * C;
}

/** Float32Arrays handed back for reuse, by length: what {@linkcode seededParameters} allocates from. */
export class Float32Pool {
  #free = new Map<number, Float32Array[]>();

  /** An array of `length` values (contents unspecified): a returned one if there is one. */
  take = (length: number): Float32Array => this.#free.get(length)?.pop() ?? new Float32Array(length);

  /** Hands an array back for a later {@linkcode Float32Pool.take}. */
  give(a: Float32Array): void {
    const list = this.#free.get(a.length);
    if (list) list.push(a);
    else this.#free.set(a.length, [a]);
  }
}

/** One drawing worker: its messages, queued, and the calls that answer it. */
class DrawingWorker {
  readonly queue: { type: string; tensor?: NamedTensor; message?: string }[] = [];
  #worker: Worker;

  constructor(url: URL, start: object, onMessage: () => void) {
    this.#worker = new Worker(url.href, { type: "module" });
    this.#worker.onmessage = (e) => {
      this.queue.push(e.data);
      onMessage();
    };
    this.#worker.onerror = (e) => {
      e.preventDefault();
      this.queue.push({ type: "error", message: e.message });
      onMessage();
    };
    this.#worker.postMessage({ type: "start", ...start });
  }

  /** Asks for one more tensor. */
  ack(): void {
    this.#worker.postMessage({ type: "ack" });
  }

  /** Hands a tensor's array back for reuse. */
  recycle(data: Float32Array): void {
    if (data.buffer.byteLength > 0) this.#worker.postMessage({ type: "recycle", data }, [data.buffer as ArrayBuffer]);
  }

  terminate(): void {
    this.#worker.terminate();
  }
}

/**
 * The same parameters as {@linkcode seededParameters}, drawn on worker threads so that the caller
 * can upload each tensor while the next is drawn: one worker draws the two embeddings while
 * another skips their draws and draws the rest, and their tensors arrive interleaved (so not in
 * creation order). Falls back to one worker when the embeddings' draws cannot be counted, and to
 * drawing on this thread where workers are not available. Each tensor's `release` hands its
 * memory back for reuse, so that a model's worth of arrays does not wait for the garbage collector.
 *
 * @param cfg The model configuration.
 * @param seed The seed given to `torch.manual_seed`.
 * @param workers How many workers to draw on (1 or 2).
 * @returns The parameters; each tensor's pieces in order.
 */
export async function* seededParametersAsync(
  cfg: Required<GPTConfig>,
  seed: number,
  workers = 2,
): AsyncGenerator<NamedTensor> {
  // beside this module; in the web build (dist/mod.js) it is dist/init_worker.js
  const source = new URL("./init_worker.ts", import.meta.url);
  const url = import.meta.url.endsWith(".js") ? new URL("./init_worker.js", import.meta.url) : source;
  const parts = workers > 1 && embeddingDraws(cfg) !== undefined ? ["embeddings", "rest"] : ["all"];
  let wake: (() => void) | undefined;
  const all: DrawingWorker[] = [];
  try {
    // in Deno a worker's module needs read (or import) permission, unlike the main module: without
    // it, draw on this thread (as in a runtime with no Worker, such as Node)
    const deno = (globalThis as { Deno?: typeof Deno }).Deno;
    const perm = !deno
      ? undefined
      : url.protocol === "file:"
      ? deno.permissions.querySync({ name: "read", path: url })
      : deno.permissions.querySync({ name: "import", host: url.host });
    if ((perm && perm.state !== "granted") || typeof Worker !== "function") throw new Error("no worker");
    for (const part of parts) all.push(new DrawingWorker(url, { config: cfg, seed, part }, () => wake?.()));
  } catch {
    for (const w of all) w.terminate();
    const pool = new Float32Pool();
    for (const t of seededParameters(cfg, seed, pool.take)) yield { ...t, release: () => pool.give(t.data) };
    return;
  }
  const live = [...all];
  let turn = 0;
  try {
    while (live.length > 0) {
      // take turns between the workers that have something, so that both keep drawing
      let w: DrawingWorker | undefined;
      for (let i = 0; i < live.length && !w; i++) {
        const c = live[(turn + i) % live.length];
        if (c.queue.length > 0) w = c;
      }
      if (!w) {
        await new Promise<void>((r) => wake = r);
        wake = undefined;
        continue;
      }
      const msg = w.queue.shift()!;
      if (msg.type === "error") throw new Error(`Cannot draw the parameters: ${msg.message}`);
      if (msg.type === "done") {
        w.terminate(); // its memory goes as soon as it is done
        live.splice(live.indexOf(w), 1);
        continue;
      }
      turn = (live.indexOf(w) + 1) % live.length;
      const t = msg.tensor!;
      const from = w;
      yield { ...t, release: () => from.recycle(t.data) };
      w.ack();
    }
  } finally {
    for (const w of all) w.terminate();
  }
}
