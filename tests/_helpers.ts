// Shared helpers for the tests: fixtures, tolerances, small random models.
import assert from "node:assert/strict";
import { type GPTConfig, validateConfig } from "../src/weights/config.ts";
import { seededParameters } from "../src/weights/init.ts";
import { TorchGenerator } from "../src/weights/torch_random.ts";
import type { ParamMap } from "../src/engine/reference.ts";

export const TESTDATA: string = new URL("./testdata/", import.meta.url).pathname;

export function fixture<T = Record<string, unknown>>(name: string): T {
  return JSON.parse(Deno.readTextFileSync(TESTDATA + name));
}

export function f32File(name: string): Float32Array {
  const b = Deno.readFileSync(TESTDATA + name);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

/** Asserts |a - b| <= atol + rtol * |b| everywhere and returns the largest difference. */
export function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol = 0, what = ""): number {
  assert.equal(a.length, b.length, `${what}: length ${a.length} != ${b.length}`);
  let worst = 0;
  for (let i = 0; i < b.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    worst = Math.max(worst, d);
    if (!(d <= atol + rtol * Math.abs(b[i]))) {
      assert.fail(
        `${what}: element ${i} is ${a[i]}, expected ${b[i]} (diff ${d}, allowed ${atol + rtol * Math.abs(b[i])})`,
      );
    }
  }
  return worst;
}

/** Random uniform values in [lo, hi). */
export function randomArray(g: TorchGenerator, n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  g.uniform(a, lo, hi);
  return a;
}

/**
 * A model's parameters drawn like PyTorch's initialisation, then LayerNorms and biases randomised
 * and weights scaled, so that every parameter matters (as in the tiny fixtures).
 */
export function randomParams(config: GPTConfig, seed: number, scale = 3): ParamMap {
  const cfg = validateConfig(config);
  const g = new TorchGenerator(seed + 1000);
  const p: ParamMap = new Map();
  for (const t of seededParameters(cfg, seed)) {
    const prev = t.row0 ? p.get(t.name)! : new Float32Array(0);
    const all = new Float32Array(prev.length + t.data.length); // later pieces of a table append rows
    all.set(prev);
    all.set(t.data, prev.length);
    p.set(t.name, all);
  }
  for (const [name, data] of p) {
    if (/norm\d?\.scale$/.test(name)) p.set(name, randomArray(g, data.length, 0.5, 1.5));
    else if (/norm\d?\.shift$|\.bias$/.test(name)) p.set(name, randomArray(g, data.length, -0.2, 0.2));
    else if (/\.weight$/.test(name) && !/emb/.test(name)) p.set(name, data.map((v) => v * scale));
  }
  return p;
}

/** The shapes of the book's parameters, by name. */
export function shapes(config: GPTConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  for (const t of seededParameters(validateConfig({ ...config, vocab_size: config.vocab_size }), 0)) {
    m.set(t.name, t.shape);
  }
  return m;
}

/** Tensors for GPTModel.fromTensors from a ParamMap. */
export function* tensorsOf(
  config: GPTConfig,
  p: ParamMap,
): Generator<{ name: string; shape: number[]; data: Float32Array }> {
  const s = shapes(config);
  for (const [name, data] of p) yield { name, shape: s.get(name)!, data };
}

/** Rounds values to float16 and back. */
export function toHalf(a: Float32Array): Float32Array {
  return Float32Array.from(Float16Array.from(a));
}

/**
 * What the 8-bit format stores for a `[rows, K]` matrix in PyTorch's layout: each row's runs of 32
 * values become `round(w / s) * s` with `s = max|w| / 127` (float32), as the weight writer does.
 */
export function toQ8(a: Float32Array, K: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r * K < a.length; r++) {
    for (let k0 = 0; k0 < K; k0 += 32) {
      const k1 = Math.min(K, k0 + 32);
      let amax = 0;
      for (let k = k0; k < k1; k++) amax = Math.max(amax, Math.abs(a[r * K + k]));
      // a 16-bit scale, rounded up: the next half above when rounding went down
      let s = Math.f16round(amax / 127);
      if (s < amax / 127) s += 2 ** (Math.max(Math.floor(Math.log2(s)), -14) - 10);
      for (let k = k0; k < k1; k++) {
        const q = s > 0 ? Math.max(-127, Math.min(127, Math.round(a[r * K + k] / s))) : 0;
        out[r * K + k] = Math.fround(q * s);
      }
    }
  }
  return out;
}

/** Rows of random token ids. */
export function randomIds(g: TorchGenerator, B: number, T: number, vocab: number): number[][] {
  return Array.from({ length: B }, () => Array.from({ length: T }, () => g.nextUint32() % vocab));
}

/** The bytes of a safetensors file: `header` (an object, or raw text) and `data`, with an optional false header length. */
export function rawSafetensors(header: unknown, data: Uint8Array, lenOverride?: bigint): Uint8Array {
  const h = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lenOverride ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}
