/**
 * Kernel parameters as typed objects: each kernel declares its `Params` struct's fields once, in
 * WGSL order (a test checks them against the WGSL), and {@linkcode encodeParams} packs an object
 * of named values into the uniform's words, `f32` fields as floats, `pad*` fields as 0.
 *
 * @module
 */

/** A kernel's params struct: its WGSL name and its fields in order; `floats` are `f32`, the rest `u32`. */
export interface ParamsLayout {
  /** The struct's name in the kernel's WGSL. */
  struct: string;
  /** Its fields, in order. */
  fields: readonly string[];
  /** The `f32` fields. */
  floats?: readonly string[];
}

/**
 * Packs named values into a params struct's words.
 *
 * @param layout The struct.
 * @param values A value for each field that is not padding.
 * @returns The words (a multiple of 4: the struct's size in a uniform).
 * @throws {TypeError} When a field has no value, or a value no field.
 */
export function encodeParams(
  layout: ParamsLayout,
  values: Readonly<Record<string, number>>,
): Uint32Array<ArrayBuffer> {
  const words = new Uint32Array(Math.max(4, Math.ceil(layout.fields.length / 4) * 4));
  const floats = new Float32Array(words.buffer);
  for (const k of Object.keys(values)) {
    if (!layout.fields.includes(k)) throw new TypeError(`${layout.struct} has no field '${k}'`);
  }
  layout.fields.forEach((f, i) => {
    if (f.startsWith("pad")) return;
    const v = values[f];
    if (v === undefined) throw new TypeError(`${layout.struct}.${f} needs a value`);
    if (layout.floats?.includes(f)) floats[i] = v;
    else words[i] = v;
  });
  return words;
}
