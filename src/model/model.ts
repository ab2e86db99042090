/**
 * `GPTModel`: the book's GPT model with its weights on the GPU. A facade: the forward pass is in
 * `forward.ts`, the kernel choices in `backend.ts`, the running of a call in `_runner.ts`.
 *
 * @module
 */

import { type GPTConfig, validateConfig } from "../weights/config.ts";
import { seededParametersAsync } from "../weights/init.ts";
import { getGpu } from "../gpu/device.ts";
import { matrixBytes, type WeightDType } from "../gpu/weights.ts";
import { vocabChunkRows } from "../gpu/vocab.ts";
import type { InputTensor } from "../weights/model_weights.ts";
import { huggingFaceConfig, openWeights, type WeightsInput } from "../weights/loader.ts";
import { browserHubModel, useBrowserCache } from "../weights/hub_browser.ts";
import { hasFiles } from "../platform/files.ts";
import { type DownloadProgress, hubModel, type HubOptions } from "../weights/hub.ts";
import { type BackendOptions, type BackendProfile, chooseBackend } from "../engine/backend.ts";
import { Kernels } from "../engine/_kernels.ts";
import { Runner } from "../engine/_runner.ts";
import { attachRunner } from "../engine/_runner_of.ts";
import { checkBatch } from "../engine/_batch.ts";
import { checkOptions } from "../engine/_options.ts";
import { overContext } from "../engine/_context.ts";
import { forwardLogits, tokenLosses } from "../engine/_scoring.ts";
import { uploadWeights } from "./_upload.ts";
import { isTrainable, saveCheckpoint, startTraining, trainableParams, trainingOf } from "./_trainable.ts";
import { parameterDraws } from "../weights/init.ts";
import { setDefaultGenerator, TorchGenerator } from "../weights/torch_random.ts";

/** The options of every way to make a model that say how it is stored and run. */
const STORAGE_KEYS = ["dtype", "maxBindingBytes", "backend", "gpu", "trainable"] as const;
const PRETRAINED_KEYS = [
  ...STORAGE_KEYS,
  "revision",
  "cacheDir",
  "offline",
  "token",
  "endpoint",
  "signal",
  "onDownload",
  "onProgress",
] as const;

/** Options for {@linkcode GPTModel.create}. */
export interface CreateOptions {
  /** Seed for `torch.manual_seed` (default 123). */
  seed?: number;
  /**
   * Weight storage: `"f32"` (default, exact), `"f16"` (half the memory and bandwidth) or `"q8"`
   * (8-bit integers with a 16-bit scale per 32 inputs of each output: about 27% of float32's memory).
   */
  dtype?: WeightDType;
  /** Largest storage binding to use, in bytes (default: the adapter's limit). */
  maxBindingBytes?: number;
  /**
   * Kernel choices instead of the adapter's defaults (see {@linkcode GPTModel.backend}).
   *
   * @experimental For tests and benchmarks; the choices may change between minor versions.
   */
  backend?: BackendOptions;
  /**
   * The WebGPU entry point to run on (default `navigator.gpu`): in Node, `create([])` from
   * `npm:webgpu`. Models on one `GPU` share its device.
   */
  gpu?: GPU;
  /**
   * Keep the parameters trainable (f32 only): gradients, {@linkcode AdamW}, `save` (about 4 times
   * the weights' memory once an optimizer steps).
   */
  trainable?: boolean;
}

/** Options for {@linkcode GPTModel.load}. */
export interface LoadOptions extends Omit<CreateOptions, "seed"> {
  /** A configuration to use instead of the file's `config.json` or `__metadata__.config`. */
  config?: GPTConfig;
  /** Called after each tensor is read, with bytes read so far and in all. */
  onProgress?: (done: number, total: number) => void;
  /** Request options for a URL: headers (e.g. `Authorization`), a `signal`. */
  request?: RequestInit;
}

/** Options for {@linkcode GPTModel.fromPretrained}: where the files come from, and how the model stores them. */
export interface PretrainedOptions
  extends Omit<LoadOptions, "config" | "onProgress" | "request">, Omit<HubOptions, "onProgress"> {
  /** Called as the weights download (not called when they are cached). */
  onDownload?: (p: DownloadProgress) => void;
  /** Called after each tensor is read, with bytes read so far and in all. */
  onProgress?: (done: number, total: number) => void;
}

/** Options for {@linkcode GPTModel.fromTensors}. */
export interface FromTensorsOptions extends Omit<CreateOptions, "seed"> {
  /** Use the token embedding as the output head when `out_head.weight` is absent (GPT-2's tied head). */
  tiedHead?: boolean;
}

/**
 * The book's `GPTModel` on WebGPU: token and position embeddings, `n_layers` pre-LayerNorm
 * blocks of causal multi-head attention and a GELU feed-forward network, a final LayerNorm and
 * the output head. Weights are uploaded once; activations stay on the GPU.
 *
 * @example
 * ```ts ignore
 * import { GPT_CONFIG_124M, GPTModel } from "./mod.ts";
 * using model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123 });
 * const logits = await model.forward([[15496, 11, 314, 716]]); // [1, 4, 50257]
 * ```
 */
export class GPTModel {
  /** The configuration, with defaults filled in. */
  readonly config: Readonly<Required<GPTConfig>>;
  /** How the weight matrices are stored. */
  readonly dtype: WeightDType;
  /** The kernel choices this model runs with, made from the adapter's capabilities. */
  readonly backend: BackendProfile;
  #runner: Runner;
  #owned: GPUBuffer[];
  #adapter: string;
  #seed?: number;
  #generator?: TorchGenerator;

  private constructor(runner: Runner, owned: GPUBuffer[]) {
    const p = runner.parts;
    this.config = Object.freeze({ ...p.cfg });
    this.dtype = p.dtype;
    this.backend = p.profile;
    this.#runner = runner;
    this.#owned = owned;
    this.#adapter = p.gpu.description;
    attachRunner(this, runner);
  }

  /**
   * Creates a model initialised exactly like `torch.manual_seed(seed); GPTModel(config)`.
   *
   * @param config The configuration (the book's keys).
   * @param options Seed (default 123) and weight storage type.
   * @returns The model, its weights on the GPU.
   * @throws {RangeError} On an invalid configuration.
   * @throws {WebGPUUnavailableError} When there is no WebGPU adapter.
   * @example
   * ```ts ignore
   * const model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123 });
   * ```
   */
  static async create(config: GPTConfig, options: CreateOptions = {}): Promise<GPTModel> {
    checkOptions(options, ["seed", ...STORAGE_KEYS], "create the model");
    const cfg = validateConfig(config);
    const seed = options.seed ?? 123;
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(`Cannot create the model: seed '${seed}' is not a non-negative integer`);
    }
    const { seed: _, ...rest } = options;
    const model = await GPTModel.#build(cfg, seededParametersAsync(cfg, seed), { ...rest, dropoutSeed: seed });
    model.#seed = seed;
    // like torch.manual_seed(seed) then GPTModel(cfg): loaders without a generator continue from here
    setDefaultGenerator(() => model.generator);
    return model;
  }

  /**
   * Loads safetensors weights: the book's `state_dict` names (config from `__metadata__.config`)
   * or Hugging Face GPT-2 (`model.safetensors` + `config.json`; without one, GPT-2's sizes for its
   * width; the head is tied to `wte` unless `lm_head.weight` is present). F32, F16 and BF16 tensors
   * are read one at a time, in file order, and uploaded as they are read.
   *
   * @param source A `.safetensors` file or a directory with `model.safetensors`; a `URL` (or an
   * `http(s)` string; in a browser any string) read with HTTP Range requests, `config.json` looked
   * for beside it; a `Blob` or `File`; an `ArrayBuffer` or `Uint8Array`; or a `Response` (read as it
   * streams; it needs a Content-Length).
   * @param options Storage type, a configuration, a progress callback, request options for a URL.
   * @returns The model.
   * @throws {Error} When the path does not exist (Deno's `NotFound`, naming the path).
   * @throws {SafetensorsError} When the file is not a valid safetensors file.
   * @throws {WeightsError} On a missing or misshapen tensor.
   * @example
   * ```ts ignore
   * using model = await GPTModel.load("./gpt2"); // Hugging Face's gpt2 directory
   * using small = await GPTModel.load(new URL("https://example.com/gpt2/model.safetensors"));
   * ```
   */
  static async load(source: WeightsInput, options: LoadOptions = {}): Promise<GPTModel> {
    checkOptions(options, ["config", "onProgress", "request", ...STORAGE_KEYS], "load the model");
    return await GPTModel.#load(source, options);
  }

  /** {@linkcode GPTModel.load} for options already checked. */
  static async #load(source: WeightsInput, options: LoadOptions): Promise<GPTModel> {
    const src = await openWeights(source, options.config, options.request);
    try {
      const { config: _, onProgress, request: __, ...rest } = options;
      const cfg = validateConfig(src.config);
      return await GPTModel.#build(cfg, src.tensors(onProgress), { ...rest, tiedHead: src.tiedHead });
    } finally {
      src.close();
    }
  }

  /**
   * Loads a GPT-2 model by name from the Hugging Face hub: `config.json` and `model.safetensors`
   * only, into the cache that Python's `huggingface_hub` shares (a cached revision loads with no
   * download; with `offline` or `HF_HUB_OFFLINE=1`, with no request at all). In a browser the files
   * go into the page's Cache Storage instead.
   *
   * @param name `"gpt2"`, `"gpt2-medium"`, `"gpt2-large"`, `"gpt2-xl"`, or any `"owner/name"` of a GPT-2 model.
   * @param options Revision, cache, offline mode, token, storage type, progress callbacks.
   * @returns The model.
   * @throws {HubError} When the files cannot be had (unknown name or revision, no access, no network and
   * not cached, no `model.safetensors`, not a GPT-2 model), in one sentence.
   * @example
   * ```ts ignore
   * using model = await GPTModel.fromPretrained("gpt2", { dtype: "f16" });
   * ```
   */
  static async fromPretrained(name: string, options: PretrainedOptions = {}): Promise<GPTModel> {
    checkOptions(options, PRETRAINED_KEYS, "load the model");
    const { onDownload, onProgress, revision, cacheDir, offline, token, endpoint, signal, ...rest } = options;
    const hub = { revision, cacheDir, offline, token, endpoint, signal, onProgress: onDownload };
    if (useBrowserCache(hasFiles())) {
      const { config, weights } = await browserHubModel(name, hub);
      return await GPTModel.#load(weights, { ...rest, onProgress, config: huggingFaceConfig(config, name) });
    }
    return await GPTModel.#load(await hubModel(name, hub), { ...rest, onProgress });
  }

  /**
   * Builds a model from named tensors (the book's `state_dict` names), uploading each as it
   * arrives. Frees everything on failure.
   *
   * @param config The configuration.
   * @param tensors The parameters, in any order.
   * @param options Storage, the tied head, kernel choices.
   * @returns The model.
   * @throws {RangeError} On an invalid configuration or option, or weights the GPU cannot hold.
   * @throws {WeightsError} On a missing or misshapen tensor.
   */
  static async fromTensors(
    config: GPTConfig,
    tensors: Iterable<InputTensor> | AsyncIterable<InputTensor>,
    options: FromTensorsOptions = {},
  ): Promise<GPTModel> {
    checkOptions(options, ["tiedHead", ...STORAGE_KEYS], "create the model");
    return await GPTModel.#build(validateConfig(config), tensors, options);
  }

  /** {@linkcode GPTModel.fromTensors} for a configuration and options already checked. */
  static async #build(
    cfg: Required<GPTConfig>,
    tensors: Iterable<InputTensor> | AsyncIterable<InputTensor>,
    options: FromTensorsOptions & { dropoutSeed?: number },
  ): Promise<GPTModel> {
    const dtype = options.dtype ?? "f32";
    if (dtype !== "f32" && dtype !== "f16" && dtype !== "q8") {
      throw new RangeError(`Cannot create the model: dtype '${dtype}' is not "f32", "f16" or "q8"`);
    }
    const hd = cfg.emb_dim / cfg.n_heads;
    if (hd > 256) {
      throw new RangeError(`Cannot create the model: head size ${hd} is over 256, use more heads`);
    }
    const gpu = await getGpu(options.gpu);
    const profile = chooseBackend(gpu, { headDim: hd, dtype }, options.backend);
    const maxBinding = Math.min(options.maxBindingBytes ?? Infinity, gpu.device.limits.maxStorageBufferBindingSize);
    const chunkRows = vocabChunkRows(cfg.emb_dim, dtype, maxBinding);
    const need = [
      ["feed-forward weight", matrixBytes(dtype, cfg.emb_dim, 4 * cfg.emb_dim)],
      ["position embedding", cfg.context_length * cfg.emb_dim * 4],
    ] as const;
    for (const [what, bytes] of need) {
      if (bytes > maxBinding) {
        throw new RangeError(
          `Cannot create the model: its ${what} needs ${bytes} bytes in one binding, ${
            bytes - maxBinding
          } over the adapter's limit of ${maxBinding}`,
        );
      }
    }
    // compile the kernels while the weights upload (pipelines are cached per device)
    const kernels = new Kernels(gpu.device, profile, dtype, hd);
    const compiling = kernels.prepare().catch((e) => e as Error);
    const owned: GPUBuffer[] = [];
    const tied = options.tiedHead ?? false;
    const train = options.trainable ? trainableParams(gpu.device, cfg, { chunkRows, tied, dtype }) : undefined;
    const weights = await uploadWeights(
      gpu.device,
      { cfg, dtype, chunkRows, tiedHead: tied },
      train ? train.tee(tensors) : tensors,
      owned,
    )
      .catch(async (e) => {
        await compiling;
        train?.params.destroy();
        throw e;
      });
    const compiled = await compiling;
    if (compiled instanceof Error) {
      for (const b of owned) b.destroy();
      train?.params.destroy();
      throw compiled;
    }
    const model = new GPTModel(new Runner({ gpu, cfg, dtype, profile, weights, kernels }), owned);
    const wait = <T>(p: Promise<T>) => model.#runner.wait(p);
    if (train) {
      await startTraining(model, { device: gpu.device, params: train.params, weights }, {
        wait,
        seed: options.dropoutSeed ?? 0,
      });
    }
    return model;
  }

  /** True when the model was made with `trainable: true`. */
  get trainable(): boolean {
    return isTrainable(this);
  }

  /**
   * PyTorch's default generator as the book's `main()` leaves it after `torch.manual_seed(seed);
   * GPTModel(cfg)`: for {@linkcode createDataloaderV1}'s shuffling, so that batches come in the
   * book's order. For a loaded model, the state `torch.manual_seed(123)` leaves.
   */
  get generator(): TorchGenerator {
    if (!this.#generator) {
      const g = new TorchGenerator(this.#seed ?? 123);
      if (this.#seed !== undefined) g.skip(parameterDraws(this.config));
      this.#generator = g;
    }
    return this.#generator;
  }

  /**
   * Writes the parameters as safetensors under the book's `state_dict` names (F32), which
   * `GPTModel.load` and PyTorch's `load_state_dict` read. The file is written beside `path` and
   * renamed over it when complete.
   *
   * @param path The file, e.g. `model.safetensors`.
   * @throws {TypeError} When the model is not trainable.
   * @example
   * ```ts ignore
   * await model.save("model.safetensors");
   * ```
   */
  async save(path: string): Promise<void> {
    const t = trainingOf(this, "save the model");
    await this.#runner.serial(
      "save the model",
      () => saveCheckpoint(this.#runner.parts.gpu.device, t.state.params, path),
    );
  }

  /** Bytes of GPU memory the weights take. */
  get weightBytes(): number {
    return this.#owned.reduce((s, b) => s + b.size, 0);
  }

  /** The adapter the model runs on, e.g. `llvmpipe (LLVM 19.1.7, 256 bits)`. */
  get adapter(): string {
    return this.#adapter;
  }

  /**
   * Runs the model on a batch of token rows, like `model(idx)` in the book.
   *
   * @param idx Token ids, `[batch, tokens]`, all rows the same length, at most `context_length` tokens.
   * @param options `signal`: rejects with its reason when aborted (the pass is one submission; it finishes first).
   * @returns The logits, `[batch, tokens, vocab_size]`, row-major.
   * @throws {TypeError} On a ragged or malformed batch.
   * @throws {RangeError} On an id outside the vocabulary or more tokens than the context.
   * @example
   * ```ts ignore
   * const logits = await model.forward([[15496, 11, 314, 716]]);
   * ```
   */
  async forward(idx: number[][], options: { signal?: AbortSignal } = {}): Promise<Float32Array> {
    checkOptions(options, ["signal"], "run the model");
    options.signal?.throwIfAborted();
    this.#runner.check("run the model");
    const { B, T, flat } = checkBatch(idx, this.config.vocab_size, "run the model");
    if (overContext(T, 0, this.config.context_length) > 0) {
      throw new RangeError(
        `Cannot run the model: ${T} tokens exceed the context length ${this.config.context_length}, crop the input`,
      );
    }
    const logits = await forwardLogits(this.#runner, flat, B, T);
    options.signal?.throwIfAborted();
    return logits;
  }

  /**
   * The mean cross-entropy of the model's predictions against targets over every row and
   * position, like the book's `calc_loss_batch`:
   * `torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())`. The logits stay
   * on the GPU; one loss per position comes back and is averaged.
   *
   * @param inputs Token ids, `[batch, tokens]`, at most `context_length` tokens.
   * @param targets The ids each position should predict, the same shape (usually the inputs shifted by one).
   * @returns The mean loss in nats; `Math.exp(loss)` is the perplexity.
   * @throws {TypeError} On malformed or mismatched batches.
   * @throws {RangeError} On an id outside the vocabulary or more tokens than the context.
   * @example
   * ```ts ignore
   * const ids = encode("Every effort moves you forward");
   * const loss = await model.loss([ids.slice(0, -1)], [ids.slice(1)]);
   * ```
   */
  async loss(inputs: number[][], targets: number[][]): Promise<number> {
    const losses = await this.#tokenLosses(inputs, targets);
    let sum = 0;
    for (const l of losses) sum += l;
    return sum / losses.length;
  }

  async #tokenLosses(inputs: number[][], targets: number[][]): Promise<Float32Array> {
    this.#runner.check("compute the loss");
    const V = this.config.vocab_size;
    const x = checkBatch(inputs, V, "compute the loss");
    const y = checkBatch(targets, V, "compute the loss");
    if (x.B !== y.B || x.T !== y.T) {
      throw new TypeError(
        `Cannot compute the loss: inputs are [${x.B}, ${x.T}] but targets are [${y.B}, ${y.T}], give one target per input token`,
      );
    }
    if (overContext(x.T, 0, this.config.context_length) > 0) {
      throw new RangeError(
        `Cannot compute the loss: ${x.T} tokens exceed the context length ${this.config.context_length}, split the text into windows`,
      );
    }
    return await tokenLosses(this.#runner, x.flat, y.flat, { B: x.B, T: x.T });
  }

  /** Frees every GPU buffer of the model. Later calls throw. */
  destroy(): void {
    const t = isTrainable(this) ? trainingOf(this) : undefined;
    t?.state.destroy();
    t?.state.params.destroy();
    this.#runner.destroy();
    for (const b of this.#owned) b.destroy();
    this.#owned = [];
  }

  /** Same as {@linkcode GPTModel.destroy}, for `using`. */
  [Symbol.dispose](): void {
    this.destroy();
  }
}
