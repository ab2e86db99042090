/**
 * What the commands of the command line share: usage errors and option parsing.
 *
 * @module
 */

import type { WeightDType } from "../gpu/weights.ts";

/** A usage error: the CLI prints it with the usage line and exits with code 2. */
export class UsageError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong with the arguments.
   */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * An integer option.
 *
 * @param name The option.
 * @param raw Its text.
 * @param def The default.
 * @param min The least value.
 * @returns The value.
 */
export function intOption(name: string, raw: string | undefined, def: number, min: number): number {
  if (raw === undefined) return def;
  const n = Number(raw);
  if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`--${name} '${raw}' must be an integer of at least ${min}`);
  }
  return n;
}

/**
 * A value rounded to 0.1 for reports, or null when not finite.
 *
 * @param x The value.
 * @returns The rounded value.
 */
export function round(x: number): number | null {
  return Number.isFinite(x) ? Math.round(x * 10) / 10 : null;
}

/**
 * A number option within `[min, max]`.
 *
 * @param name The option.
 * @param raw Its text.
 * @param def The default.
 * @param min The least value.
 * @param max The largest value.
 * @returns The value.
 */
export function numOption(name: string, raw: string | undefined, def: number, min: number, max: number): number {
  if (raw === undefined) return def;
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(n) || n < min || n > max) {
    const range = min === -Infinity && max === Infinity
      ? ""
      : max === Infinity
      ? ` at least ${min}`
      : ` in (0, ${max}]`;
    throw new UsageError(`--${name} '${raw}' must be a number${range}`);
  }
  return n;
}

/**
 * Text with its control characters (other than tab and newline; escape sequences included) written
 * as `\\xNN`, so that what a model writes cannot move the cursor or change the terminal.
 *
 * @param t The text.
 * @returns The text, safe to print on a terminal.
 */
export function escapeControls(t: string): string {
  // deno-lint-ignore no-control-regex -- control characters are what this finds
  return t.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

const DTYPES: readonly WeightDType[] = ["f32", "f16", "q8"];

/**
 * A weight-type option (`--dtype`, `--compare-dtype`).
 *
 * @param name The option.
 * @param raw Its text.
 * @param def The default.
 * @returns The type, or the default when the option is absent.
 */
export function dtypeOption<D extends WeightDType | undefined>(
  name: string,
  raw: string | undefined,
  def: D,
): WeightDType | D {
  if (raw === undefined) return def;
  if (!DTYPES.includes(raw as WeightDType)) {
    throw new UsageError(`--${name} '${raw}' must be ${DTYPES.slice(0, -1).join(", ")} or ${DTYPES.at(-1)}`);
  }
  return raw as WeightDType;
}
