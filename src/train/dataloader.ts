/**
 * The book's data pipeline (chapter 2): `GPTDatasetV1` cuts a text's token ids into windows of
 * `maxLength` with their targets shifted by one, and `createDataloaderV1` batches them as PyTorch's
 * `DataLoader` does, drawing from PyTorch's generator exactly when it does, so that shuffled
 * batches come in the same order: each pass draws an int64 when its iterator is made, and a
 * shuffled pass draws a second when its first batch is taken, to seed the `randperm` of
 * `RandomSampler`.
 *
 * @module
 */

import { encode } from "../text/tokenizer.ts";
import { defaultGenerator, TorchGenerator } from "../weights/torch_random.ts";

/** A batch: inputs and targets, `[batch, maxLength]` each. */
export type Batch = [inputs: number[][], targets: number[][]];

/** The book's `GPTDatasetV1`: sliding windows over a text's token ids. */
export class GPTDatasetV1 {
  /** Input windows. */
  readonly inputIds: number[][] = [];
  /** Target windows (the inputs shifted by one token). */
  readonly targetIds: number[][] = [];

  /**
   * Cuts windows: for `i` in `range(0, len(ids) - maxLength, stride)`.
   *
   * @param txt The text (encoded with GPT-2's tokenizer, `<|endoftext|>` allowed) or its token ids.
   * @param maxLength Tokens per window.
   * @param stride Tokens between window starts.
   */
  constructor(txt: string | readonly number[], maxLength: number, stride: number) {
    const ids = typeof txt === "string" ? encode(txt) : txt;
    for (let i = 0; i < ids.length - maxLength; i += stride) {
      this.inputIds.push(ids.slice(i, i + maxLength));
      this.targetIds.push(ids.slice(i + 1, i + maxLength + 1));
    }
  }

  /** The number of windows. */
  get length(): number {
    return this.inputIds.length;
  }
}

/** Options of {@linkcode createDataloaderV1}, with the book's defaults. */
export interface DataloaderOptions {
  /** Windows per batch (default 4). */
  batchSize?: number;
  /** Tokens per window (default 256). */
  maxLength?: number;
  /** Tokens between window starts (default 128). */
  stride?: number;
  /** Visit the windows in a new random order on every pass (default true). */
  shuffle?: boolean;
  /** Leave out a last batch smaller than `batchSize` (default true). */
  dropLast?: boolean;
  /**
   * The generator to draw from, shared with whatever else draws from it: `model.generator` for the
   * book's order. Without it or `seed`, the loader draws from the default generator, which
   * `GPTModel.create` leaves where drawing the parameters ended (PyTorch's global generator).
   */
  generator?: TorchGenerator;
  /** Draw from a generator of the loader's own, seeded with this, instead. */
  seed?: number;
}

/** PyTorch's `DataLoader` over a {@linkcode GPTDatasetV1} (one process, `num_workers=0`). */
export class DataLoader implements Iterable<Batch> {
  /** The dataset. */
  readonly dataset: GPTDatasetV1;
  /** Windows per batch. */
  readonly batchSize: number;
  /** Whether each pass shuffles. */
  readonly shuffle: boolean;
  /** Whether a short last batch is left out. */
  readonly dropLast: boolean;
  #generator: TorchGenerator;

  /**
   * Makes a loader over a dataset (see {@linkcode createDataloaderV1}).
   *
   * @param dataset The windows.
   * @param options Batch size, shuffling, the generator.
   */
  constructor(
    dataset: GPTDatasetV1,
    options: { batchSize: number; shuffle: boolean; dropLast: boolean; generator: TorchGenerator },
  ) {
    this.dataset = dataset;
    this.batchSize = options.batchSize;
    this.shuffle = options.shuffle;
    this.dropLast = options.dropLast;
    this.#generator = options.generator;
  }

  /** Batches per pass (`len(loader)`). */
  get length(): number {
    const n = this.dataset.length;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** One pass: draws its seeds as PyTorch's iterator does, then yields batches. */
  *[Symbol.iterator](): Iterator<Batch> {
    randomInt64(this.#generator); // _BaseDataLoaderIter's base seed
    yield* this.#batches();
  }

  *#batches(): Generator<Batch> {
    const n = this.dataset.length;
    let order: number[] | undefined;
    let batch: number[] = [];
    for (let i = 0; i < n; i++) {
      // RandomSampler draws its seed when its first index is asked for
      order ??= this.shuffle ? randperm(n, new TorchGenerator(Number(randomInt64(this.#generator) & 0xffffffffn))) : [];
      batch.push(this.shuffle ? order[i] : i);
      if (batch.length === this.batchSize) {
        yield this.#take(batch);
        batch = [];
      }
    }
    if (batch.length > 0 && !this.dropLast) yield this.#take(batch);
  }

  #take(indices: number[]): Batch {
    return [indices.map((i) => this.dataset.inputIds[i]), indices.map((i) => this.dataset.targetIds[i])];
  }
}

/**
 * The book's `create_dataloader_v1`: a {@linkcode GPTDatasetV1} over `txt` in batches.
 *
 * @param txt The text, or its token ids.
 * @param options Batch size, window length and stride, shuffling, the generator.
 * @returns The loader: iterate it for `[inputs, targets]` batches; `length` is the batches per pass.
 * @throws {RangeError} On a batch size, length or stride that is not a positive integer.
 * @example
 * ```ts ignore
 * const loader = createDataloaderV1(text, { batchSize: 2, maxLength: 256, stride: 256 });
 * for (const [inputs, targets] of loader) console.log(inputs.length);
 * ```
 */
export function createDataloaderV1(txt: string | readonly number[], options: DataloaderOptions = {}): DataLoader {
  const known = ["batchSize", "maxLength", "stride", "shuffle", "dropLast", "generator", "seed"];
  for (const k of Object.keys(options)) {
    if (!known.includes(k)) throw new TypeError(`Cannot make the data loader: unknown option '${k}'`);
  }
  const { batchSize = 4, maxLength = 256, stride = 128, shuffle = true, dropLast = true } = options;
  for (const [name, v] of [["batchSize", batchSize], ["maxLength", maxLength], ["stride", stride]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) {
      throw new RangeError(`Cannot make the data loader: ${name} '${v}' is not a positive integer`);
    }
  }
  const generator = options.generator ??
    (options.seed !== undefined ? new TorchGenerator(options.seed) : defaultGenerator());
  return new DataLoader(new GPTDatasetV1(txt, maxLength, stride), { batchSize, shuffle, dropLast, generator });
}

/** `torch.empty((), dtype=torch.int64).random_(generator)`: two 32-bit draws (high first), modulo 2^63. */
export function randomInt64(g: TorchGenerator): bigint {
  const hi = BigInt(g.nextUint32());
  const lo = BigInt(g.nextUint32());
  return ((hi << 32n) | lo) % (1n << 63n);
}

/**
 * `torch.randperm(n, generator=g)` on the CPU: a Fisher-Yates shuffle from the front,
 * `z = random() % (n - i)`.
 *
 * @param n The count.
 * @param g The generator.
 * @returns A permutation of `0 .. n - 1`.
 */
export function randperm(n: number, g: TorchGenerator): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < n - 1; i++) {
    const z = g.nextUint32() % (n - i);
    [a[i], a[z + i]] = [a[z + i], a[i]];
  }
  return a;
}
