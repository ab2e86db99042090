/**
 * A random generator that reproduces PyTorch's CPU generator (`torch.manual_seed`) and the
 * float32 `uniform_` / `normal_` draws used to initialise `nn.Linear` and `nn.Embedding`.
 *
 * @module
 */

const N = 624;
const M = 397;
const TWO_PI = 2 * Math.PI;
const INV_2_24 = 1 / (1 << 24);
const INV_2_53 = 2 ** -53;

/** A 32-bit Mersenne Twister seeded like `torch.manual_seed(seed)`, with PyTorch's float32 draws. */
export class TorchGenerator {
  #state = new Uint32Array(N);
  #index = N;
  #nextNormal: number | undefined;

  /**
   * Creates a generator in the state `torch.manual_seed(seed)` leaves PyTorch's CPU generator in.
   *
   * @param seed A non-negative integer; only its low 32 bits are used, as in mt19937.
   * @throws {RangeError} When the seed is not a non-negative safe integer.
   */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(`Cannot seed the generator: seed '${seed}' is not a non-negative integer`);
    }
    const s = this.#state;
    s[0] = seed >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = s[i - 1] ^ (s[i - 1] >>> 30);
      // 1812433253 * prev + i, in 32-bit arithmetic
      s[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
  }

  #twist(): void {
    const s = this.#state;
    let i = 0;
    for (; i < N - M; i++) {
      const y = (s[i] & 0x80000000) | (s[i + 1] & 0x7fffffff);
      s[i] = s[i + M] ^ (y >>> 1) ^ (-(y & 1) & 0x9908b0df);
    }
    for (; i < N - 1; i++) {
      const y = (s[i] & 0x80000000) | (s[i + 1] & 0x7fffffff);
      s[i] = s[i + M - N] ^ (y >>> 1) ^ (-(y & 1) & 0x9908b0df);
    }
    const y = (s[N - 1] & 0x80000000) | (s[0] & 0x7fffffff);
    s[N - 1] = s[M - 1] ^ (y >>> 1) ^ (-(y & 1) & 0x9908b0df);
    this.#index = 0;
  }

  /**
   * Advances the generator by `count` 32-bit draws without producing them (only the state
   * updates run, about a quarter of the cost of drawing).
   *
   * @param count The number of draws to skip, a non-negative integer.
   */
  skip(count: number): void {
    if (!Number.isSafeInteger(count) || count < 0) {
      throw new RangeError(`Cannot skip draws: count '${count}' is not a non-negative integer`);
    }
    let left = count;
    while (left > 0) {
      if (this.#index >= N) this.#twist();
      const m = Math.min(N - this.#index, left);
      this.#index += m;
      left -= m;
    }
  }

  /** Returns the next 32-bit unsigned draw, like the generator's `random()`. */
  nextUint32(): number {
    if (this.#index >= N) this.#twist();
    let y = this.#state[this.#index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /**
   * Fills `out` like `tensor.uniform_(from, to)` on a float32 tensor: one 32-bit draw per element,
   * `(r & 0xFFFFFF) * 2^-24 * (to - from) + from` in float32 arithmetic.
   *
   * @param out The float32 values to fill, in order.
   * @param from The lower bound (converted to float32, as PyTorch does).
   * @param to The upper bound (converted to float32).
   */
  uniform(out: Float32Array, from: number, to: number): void {
    const f = Math.fround(from);
    const range = Math.fround(Math.fround(to) - f);
    const s = this.#state;
    const n = out.length;
    let idx = this.#index;
    let i = 0;
    while (i < n) {
      if (idx >= N) {
        this.#twist();
        idx = 0;
      }
      const m = Math.min(N - idx, n - i);
      for (let j = 0; j < m; j++) {
        let y = s[idx + j];
        y ^= y >>> 11;
        y ^= (y << 7) & 0x9d2c5680;
        y ^= (y << 15) & 0xefc60000;
        y ^= y >>> 18;
        // x * range is exact in double: one rounding to float32, like an FMA
        out[i + j] = (y & 0xffffff) * INV_2_24 * range + f;
      }
      idx += m;
      i += m;
    }
    this.#index = idx;
  }

  /**
   * Fills `out` like `tensor.normal_(mean, std)` on a contiguous float32 tensor.
   *
   * With 16 or more elements PyTorch fills the tensor with uniform draws, turns each block of 16
   * into normals by Box-Muller (pairs `j`, `j + 8`) and, when the size is not a multiple of 16,
   * draws the last 16 elements again. Smaller tensors take PyTorch's scalar double-precision path.
   *
   * @param out The float32 values to fill, in order.
   * @param mean The mean of the distribution.
   * @param std The standard deviation of the distribution.
   */
  normal(out: Float32Array, mean = 0, std = 1): void {
    const size = out.length;
    if (size < 16) {
      for (let i = 0; i < size; i++) out[i] = this.#scalarNormal(mean, std);
      return;
    }
    this.uniform(out, 0, 1);
    const m = Math.fround(mean);
    const sd = Math.fround(std);
    for (let i = 0; i + 16 <= size; i += 16) fill16(out, i, m, sd);
    if (size % 16 !== 0) {
      const tail = out.subarray(size - 16);
      this.uniform(tail, 0, 1);
      fill16(out, size - 16, m, sd);
    }
  }

  #scalarNormal(mean: number, std: number): number {
    if (this.#nextNormal !== undefined) {
      const r = this.#nextNormal;
      this.#nextNormal = undefined;
      return Math.fround(r * std + mean);
    }
    const u1 = this.#uniform64();
    const u2 = this.#uniform64();
    const r = Math.sqrt(-2 * Math.log(1 - u2));
    const theta = TWO_PI * u1;
    this.#nextNormal = r * Math.sin(theta);
    return Math.fround(r * Math.cos(theta) * std + mean);
  }

  #uniform64(): number {
    const hi = this.nextUint32();
    const lo = this.nextUint32();
    // the low 53 bits of (hi << 32 | lo)
    return ((hi & 0x1fffff) * 4294967296 + lo) * INV_2_53;
  }
}

// cos and sin of 2 pi k / 2^24 for a 24-bit k, by angle addition over its high and low 12 bits
const TRIG_HI_COS = new Float64Array(4096);
const TRIG_HI_SIN = new Float64Array(4096);
const TRIG_LO_COS = new Float64Array(4096);
const TRIG_LO_SIN = new Float64Array(4096);
for (let i = 0; i < 4096; i++) {
  TRIG_HI_COS[i] = Math.cos(TWO_PI * i / 4096);
  TRIG_HI_SIN[i] = Math.sin(TWO_PI * i / 4096);
  TRIG_LO_COS[i] = Math.cos(TWO_PI * i / 16777216);
  TRIG_LO_SIN[i] = Math.sin(TWO_PI * i / 16777216);
}

/** Box-Muller on one block of 16 uniform draws (each a multiple of 2^-24), in place. */
function fill16(x: Float32Array, o: number, mean: number, std: number): void {
  for (let j = 0; j < 8; j++) {
    const radius = Math.sqrt(-2 * Math.log(1 - x[o + j]));
    const k = x[o + j + 8] * 16777216; // u2 = k / 2^24 exactly
    const hi = k >>> 12;
    const lo = k & 4095;
    const ch = TRIG_HI_COS[hi], sh = TRIG_HI_SIN[hi], cl = TRIG_LO_COS[lo], sl = TRIG_LO_SIN[lo];
    x[o + j] = radius * (ch * cl - sh * sl) * std + mean;
    x[o + j + 8] = radius * (sh * cl + ch * sl) * std + mean;
  }
}

/**
 * How many 32-bit draws {@linkcode TorchGenerator.normal} takes for `size` values, or undefined
 * below 16 values (the scalar path, whose use depends on the generator's cached normal).
 *
 * @param size The number of values.
 * @returns The number of draws.
 */
export function normalDraws(size: number): number | undefined {
  return size < 16 ? undefined : size + (size % 16 === 0 ? 0 : 16);
}

/**
 * The bound PyTorch's `nn.Linear` uses for its weight: `kaiming_uniform_(w, a=sqrt(5))`,
 * computed with the same double-precision steps as `torch.nn.init`.
 *
 * @param fanIn The layer's input features.
 * @returns The bound `b` of `uniform_(-b, b)`.
 */
export function linearWeightBound(fanIn: number): number {
  const a = Math.sqrt(5);
  const gain = Math.sqrt(2.0 / (1 + a ** 2));
  const std = gain / Math.sqrt(fanIn);
  return Math.sqrt(3.0) * std;
}

/**
 * The bound PyTorch's `nn.Linear` uses for its bias: `1 / sqrt(fan_in)`.
 *
 * @param fanIn The layer's input features.
 * @returns The bound `b` of `uniform_(-b, b)`.
 */
export function linearBiasBound(fanIn: number): number {
  return fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
}

/** PyTorch's default seed (`torch.initial_seed()` in a new process). */
const TORCH_DEFAULT_SEED = 67280421310721;
let defaultOf: () => TorchGenerator = () => {
  const g = new TorchGenerator(TORCH_DEFAULT_SEED % 2 ** 32);
  defaultOf = () => g;
  return g;
};

/**
 * PyTorch's default generator as this library keeps it: the generator `GPTModel.create` last left
 * (`torch.manual_seed(seed); GPTModel(cfg)`), or a new process's. A data loader given no `generator`
 * and no `seed` draws from it, as PyTorch's loaders draw from the global generator.
 *
 * @returns The generator.
 */
export function defaultGenerator(): TorchGenerator {
  return defaultOf();
}

/**
 * Makes a generator the default (called by `GPTModel.create`, lazily: the generator is made when
 * first asked for).
 *
 * @param get Returns the generator.
 */
export function setDefaultGenerator(get: () => TorchGenerator): void {
  let g: TorchGenerator | undefined;
  defaultOf = () => g ??= get();
}
