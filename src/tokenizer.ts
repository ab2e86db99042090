/**
 * GPT-2's byte-pair encoding (tiktoken `gpt2`), through `npm:js-tiktoken`.
 *
 * @module
 */

import { getEncoding, type Tiktoken } from "js-tiktoken";

let enc: Tiktoken | undefined;

function gpt2(): Tiktoken {
  return enc ??= getEncoding("gpt2");
}

/** The id of `<|endoftext|>` in GPT-2's vocabulary. */
export const END_OF_TEXT = 50256;

/**
 * Encodes text into GPT-2 token ids, like `tiktoken.get_encoding("gpt2").encode(text)`.
 *
 * @param text The text.
 * @returns The token ids.
 * @example
 * ```ts
 * import { encode } from "./tokenizer.ts";
 * encode("Hello, I am"); // [15496, 11, 314, 716]
 * ```
 */
export function encode(text: string): number[] {
  return gpt2().encode(text, ["<|endoftext|>"]);
}

/**
 * Decodes GPT-2 token ids into text.
 *
 * @param ids The token ids.
 * @returns The text.
 * @example
 * ```ts
 * import { decode } from "./tokenizer.ts";
 * decode([15496, 11, 314, 716]); // "Hello, I am"
 * ```
 */
export function decode(ids: readonly number[]): string {
  return gpt2().decode(ids as number[]);
}
