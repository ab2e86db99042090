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

function positiveInt(cfg: GPTConfig, key: keyof GPTConfig): void {
  const v = cfg[key];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
    throw new RangeError(
      `Invalid config: '${key}' is ${JSON.stringify(v)}, expected a positive integer`,
    );
  }
}

/**
 * Checks a configuration and returns a normalised copy.
 *
 * @param config The configuration to check.
 * @returns A copy with defaults filled in.
 * @throws {RangeError} When a size is not a positive integer or `emb_dim` is not divisible by `n_heads`.
 */
export function validateConfig(config: GPTConfig): Required<GPTConfig> {
  if (config === null || typeof config !== "object") {
    throw new TypeError(`Invalid config: expected an object, got ${String(config)}`);
  }
  for (const key of ["vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"] as const) {
    positiveInt(config, key);
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
    drop_rate: config.drop_rate ?? 0,
    qkv_bias: Boolean(config.qkv_bias),
    layer_norm_epsilon: eps,
  };
}
