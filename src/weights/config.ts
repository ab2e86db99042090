/**
 * Model configurations with the book's keys, and their validation.
 *
 * @module
 */

/** A GPT model's shape, with the keys of the book's `GPT_CONFIG_124M` dictionary. */
export interface GPTConfig {
  /** Number of token ids the model knows (50257 for GPT-2's tokenizer). */
  vocab_size: number;
  /** Most tokens one forward pass can see (positions in the position embedding). */
  context_length: number;
  /** Width of the residual stream. */
  emb_dim: number;
  /** Attention heads per layer; `emb_dim` must be divisible by it. */
  n_heads: number;
  /** Transformer blocks. */
  n_layers: number;
  /** Dropout rate during training; inference ignores it (eval mode). */
  drop_rate: number;
  /** Whether the query, key and value projections have a bias. */
  qkv_bias: boolean;
  /** LayerNorm epsilon (default 1e-5). */
  layer_norm_epsilon?: number;
}

/** GPT-2 small (124M parameters with a tied head; 163M as the book's untied `GPTModel`). */
export const GPT_CONFIG_124M: Readonly<GPTConfig> = Object.freeze({
  vocab_size: 50257,
  context_length: 1024,
  emb_dim: 768,
  n_heads: 12,
  n_layers: 12,
  drop_rate: 0.1,
  qkv_bias: false,
});

/** GPT-2 medium (355M). */
export const GPT_CONFIG_355M: Readonly<GPTConfig> = Object.freeze({
  ...GPT_CONFIG_124M,
  emb_dim: 1024,
  n_heads: 16,
  n_layers: 24,
});

/** GPT-2 large (774M). */
export const GPT_CONFIG_774M: Readonly<GPTConfig> = Object.freeze({
  ...GPT_CONFIG_124M,
  emb_dim: 1280,
  n_heads: 20,
  n_layers: 36,
});

/** GPT-2 XL (1558M). */
export const GPT_CONFIG_1558M: Readonly<GPTConfig> = Object.freeze({
  ...GPT_CONFIG_124M,
  emb_dim: 1600,
  n_heads: 25,
  n_layers: 48,
});

/**
 * The largest size each field may have. Token ids are exact in float32 up to 2^24; the other
 * bounds are far past any GPT-2 and keep a typo from drawing or allocating terabytes.
 */
export const CONFIG_LIMITS = Object.freeze({
  vocab_size: 1 << 24,
  context_length: 1 << 20,
  emb_dim: 1 << 16,
  n_heads: 1 << 12,
  n_layers: 1 << 12,
});

const CONFIG_KEYS = new Set([
  "vocab_size",
  "context_length",
  "emb_dim",
  "n_heads",
  "n_layers",
  "drop_rate",
  "qkv_bias",
  "layer_norm_epsilon",
]);

function sizeField(cfg: GPTConfig, key: keyof typeof CONFIG_LIMITS): void {
  const v = cfg[key];
  const max = CONFIG_LIMITS[key];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > max) {
    throw new RangeError(
      `Invalid config: '${key}' is ${JSON.stringify(v)}, expected an integer from 1 to ${max}`,
    );
  }
}

/**
 * Checks a configuration and returns a normalised copy.
 *
 * @param config The configuration to check.
 * @returns A copy with defaults filled in.
 * @throws {RangeError} On an unknown key, a size that is not an integer within {@linkcode CONFIG_LIMITS}, a
 * `drop_rate` outside [0, 1), a `qkv_bias` that is not a boolean, or `emb_dim` not divisible by `n_heads`.
 */
export function validateConfig(config: GPTConfig): Required<GPTConfig> {
  if (config === null || typeof config !== "object") {
    throw new TypeError(`Invalid config: expected an object, got ${String(config)}`);
  }
  for (const key of Object.keys(config)) {
    if (!CONFIG_KEYS.has(key)) {
      throw new RangeError(`Invalid config: unknown key '${key}'; the keys are ${[...CONFIG_KEYS].join(", ")}`);
    }
  }
  for (const key of ["vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"] as const) {
    sizeField(config, key);
  }
  const drop = config.drop_rate ?? 0;
  if (typeof drop !== "number" || !(drop >= 0 && drop < 1)) {
    throw new RangeError(`Invalid config: 'drop_rate' is ${JSON.stringify(drop)}, expected a number from 0 up to 1`);
  }
  if (config.qkv_bias !== undefined && typeof config.qkv_bias !== "boolean") {
    throw new RangeError(`Invalid config: 'qkv_bias' is ${JSON.stringify(config.qkv_bias)}, expected true or false`);
  }
  if (config.emb_dim % config.n_heads !== 0) {
    throw new RangeError(
      `Invalid config: emb_dim ${config.emb_dim} is not divisible by n_heads ${config.n_heads}, pick sizes where it is`,
    );
  }
  if (config.emb_dim % 4 !== 0) {
    throw new RangeError(
      `Invalid config: emb_dim ${config.emb_dim} is not a multiple of 4, which the GPU kernels read in groups of 4`,
    );
  }
  const eps = config.layer_norm_epsilon ?? 1e-5;
  if (!(eps > 0 && Number.isFinite(eps))) {
    throw new RangeError(`Invalid config: layer_norm_epsilon '${eps}' must be a positive number`);
  }
  return {
    vocab_size: config.vocab_size,
    context_length: config.context_length,
    emb_dim: config.emb_dim,
    n_heads: config.n_heads,
    n_layers: config.n_layers,
    drop_rate: drop,
    qkv_bias: config.qkv_bias ?? false,
    layer_norm_epsilon: eps,
  };
}
