/**
 * Half-precision floats as 16-bit patterns in `Uint16Array`s, in every runtime: `Float16Array`
 * where it exists (Deno, recent browsers), a converter with the same rounding (to nearest, ties to
 * even) where it does not (Node 20). GPU uploads always get the `Uint16Array`: dawn.node refuses a
 * `Float16Array` in `writeBuffer`.
 *
 * @module
 */

type F16Ctor = new (buffer: ArrayBufferLike, byteOffset: number, length: number) => {
  set(src: ArrayLike<number>): void;
  [i: number]: number;
};

/** `Float16Array`, when the runtime has it. */
const NATIVE: F16Ctor | undefined = (globalThis as { Float16Array?: F16Ctor }).Float16Array;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * The half-precision bit pattern nearest to a number (first rounded to float32, as
 * `Float16Array` does for float32 input): ties to even, overflow to infinity, NaN as `0x7e00`.
 *
 * @param x The number.
 * @returns Its 16 bits.
 */
export function halfBits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return mant ? 0x7e00 : sign | 0x7c00;
  const e = exp - 112; // the half's biased exponent
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // a subnormal half (or zero): m * 2^-24
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e;
    const halfway = 1 << (shift - 1);
    let m = full >>> shift;
    const rest = full & ((1 << shift) - 1);
    if (rest > halfway || (rest === halfway && (m & 1) === 1)) m++;
    return sign | m;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++; // a carry into the exponent is right
  return sign | h;
}

/**
 * The number a half-precision bit pattern holds.
 *
 * @param h 16 bits.
 * @returns Its value (exact).
 */
export function halfValue(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return s * (1024 + m) * 2 ** (e - 25);
}

/**
 * Writes float32 values as halves.
 *
 * @param src The values.
 * @param dst Receives their bit patterns (at least as long as `src`).
 * @param native Use `Float16Array` when the runtime has it (default true; false tests the converter).
 */
export function writeHalves(src: ArrayLike<number>, dst: Uint16Array, native = true): void {
  if (native && NATIVE) {
    new NATIVE(dst.buffer, dst.byteOffset, dst.length).set(src);
    return;
  }
  for (let i = 0; i < src.length; i++) dst[i] = halfBits(src[i]);
}

/**
 * Reads halves as float32 values.
 *
 * @param src Bit patterns.
 * @param native Use `Float16Array` when the runtime has it (default true).
 * @returns Their values.
 */
export function readHalves(src: Uint16Array, native = true): Float32Array {
  const out = new Float32Array(src.length);
  if (native && NATIVE) {
    const h = new NATIVE(src.buffer, src.byteOffset, src.length);
    for (let i = 0; i < src.length; i++) out[i] = h[i];
    return out;
  }
  for (let i = 0; i < src.length; i++) out[i] = halfValue(src[i]);
  return out;
}
