/**
 * Options objects: misspelled keys are refused rather than ignored.
 *
 * @module
 */

/**
 * Throws when `options` is not an object, or has a key that is not one of `allowed`.
 *
 * @param options The options given.
 * @param allowed The keys the call reads.
 * @param what What the caller was about to do (`"generate"`), for the message.
 * @throws {TypeError} Naming the key and the keys there are.
 */
export function checkOptions(options: unknown, allowed: readonly string[], what: string): void {
  if (options === undefined) return;
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new TypeError(`Cannot ${what}: options must be an object, got ${JSON.stringify(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw new TypeError(`Cannot ${what}: unknown option '${key}', the options are ${allowed.join(", ")}`);
    }
  }
}
