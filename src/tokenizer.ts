/**
 * GPT-2's byte-pair encoding (tiktoken `gpt2`), through `npm:js-tiktoken`.
 *
 * @module
 */

import { Tiktoken } from "js-tiktoken/lite";
import gpt2Ranks from "js-tiktoken/ranks/gpt2";

let enc: Tiktoken | undefined;

// only GPT-2's ranks: the package's full entry point also loads every other encoding's
function gpt2(): Tiktoken {
  return enc ??= new Tiktoken(gpt2Ranks);
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

/**
 * Turns token ids, arriving a few at a time, into text pieces that never end inside a UTF-8
 * character: a GPT-2 token can end in the middle of one (an emoji, an accented letter), so text
 * that still ends in an incomplete character waits for the tokens that complete it.
 *
 * @example
 * ```ts
 * import { TextStreamer } from "./tokenizer.ts";
 * const s = new TextStreamer();
 * s.push([8582]); // "" (the first bytes of an emoji)
 * s.push([25081]); // "🙂"
 * ```
 */
export class TextStreamer {
  #ids: number[] = [];
  #emitted = 0;

  /**
   * Adds ids and returns the text that is now complete.
   *
   * @param ids The next token ids.
   * @returns New text (possibly empty).
   */
  push(ids: readonly number[]): string {
    this.#ids.push(...ids);
    return this.#take(false);
  }

  /**
   * Returns whatever text is left, incomplete characters included (as U+FFFD).
   *
   * @returns The rest of the text.
   */
  flush(): string {
    return this.#take(true);
  }

  #take(final: boolean): string {
    const text = decode(this.#ids);
    let upto = text.length;
    if (!final) { while (upto > this.#emitted && text[upto - 1] === "\uFFFD") upto--; }
    const piece = upto > this.#emitted ? text.slice(this.#emitted, upto) : "";
    this.#emitted = Math.max(this.#emitted, upto);
    return piece;
  }
}
