/**
 * Validation of a batch of token rows, shared by the model and the generation functions.
 *
 * @module
 */

/** Validates a batch of token rows and returns it as `[B, T]` plus a flat copy. */
export function checkBatch(
  idx: unknown,
  vocab: number,
  what: string,
): { B: number; T: number; flat: Uint32Array } {
  if (!Array.isArray(idx) || idx.length === 0) {
    throw new TypeError(
      `Cannot ${what}: idx must be a non-empty array of token rows, got ${JSON.stringify(idx)?.slice(0, 40)}`,
    );
  }
  const B = idx.length;
  const first = idx[0];
  if (!Array.isArray(first)) {
    throw new TypeError(`Cannot ${what}: idx[0] is not an array of token ids, pass a batch like [[15496, 11]]`);
  }
  const T = first.length;
  if (T === 0) throw new RangeError(`Cannot ${what}: prompt has 0 tokens`);
  const flat = new Uint32Array(B * T);
  for (let b = 0; b < B; b++) {
    const row = idx[b];
    if (!Array.isArray(row) || row.length !== T) {
      throw new TypeError(
        `Cannot ${what}: row ${b} has ${
          Array.isArray(row) ? row.length : "no"
        } tokens but row 0 has ${T}; pad or split the batch (generate() takes rows of different lengths)`,
      );
    }
    for (let t = 0; t < T; t++) {
      const id = row[t];
      if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= vocab) {
        throw new RangeError(
          `Cannot ${what}: token id '${id}' at [${b}][${t}] is outside [0, ${vocab}), use ids from the model's tokenizer`,
        );
      }
      flat[b * T + t] = id;
    }
  }
  return { B, T, flat };
}
