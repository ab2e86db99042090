/**
 * GPT-2's byte-pair encoding (tiktoken `gpt2`): `npm:js-tiktoken`'s ranks and pre-tokenising
 * pattern, with a merge loop whose cost grows as n log n in a piece's length. js-tiktoken's own loop
 * scans every pair for every merge, which made a 4,000-character run without spaces take over a
 * minute; the ids are the same (the lowest-ranked pair merges first, the leftmost on ties).
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

/** What the encoder needs from js-tiktoken's instance (fields its typings leave out). */
interface Ranks {
  rankMap: Map<string, number>;
  patStr: string;
}

/** A min-heap of candidate merges: [rank, start of the left part, end of the right part]. */
class MergeHeap {
  #a: [number, number, number][] = [];
  get size(): number {
    return this.#a.length;
  }
  #less(i: number, j: number): boolean {
    const x = this.#a[i], y = this.#a[j];
    return x[0] < y[0] || (x[0] === y[0] && x[1] < y[1]);
  }
  push(e: [number, number, number]): void {
    const a = this.#a;
    a.push(e);
    for (let i = a.length - 1; i > 0;) {
      const p = (i - 1) >> 1;
      if (!this.#less(i, p)) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }
  pop(): [number, number, number] {
    const a = this.#a;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      for (let i = 0;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < a.length && this.#less(l, m)) m = l;
        if (r < a.length && this.#less(r, m)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}

/**
 * The byte-pair encoding of one piece: repeatedly merge the adjacent pair whose bytes have the
 * lowest rank (the leftmost on ties), as tiktoken does, with a heap of candidate pairs instead of a
 * scan per merge.
 */
function bytePairEncode(piece: Uint8Array, ranks: Map<string, number>): number[] {
  const n = piece.length;
  const key = (a: number, b: number) => piece.subarray(a, b).join(",");
  if (n === 1) return [ranks.get(key(0, 1))!];
  // parts as a linked list over their start offsets: end[s] and prev[s] for each live start s
  const end = new Int32Array(n + 1);
  const prev = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) {
    end[i] = i + 1;
    prev[i] = i - 1;
  }
  const heap = new MergeHeap();
  const consider = (s: number) => {
    const e = end[s];
    if (e >= n) return;
    const rank = ranks.get(key(s, end[e]));
    if (rank !== undefined) heap.push([rank, s, end[e]]);
  };
  for (let i = 0; i + 1 < n; i++) consider(i);
  while (heap.size > 0) {
    const [, s, e2] = heap.pop();
    const mid = end[s];
    // stale: the left part grew, or the right part is gone or grew
    if (mid === 0 || mid >= n || end[mid] !== e2) continue;
    end[s] = e2;
    end[mid] = 0; // mid is no longer a part's start
    if (e2 < n) prev[e2] = s;
    if (prev[s] >= 0) consider(prev[s]);
    consider(s);
  }
  const out: number[] = [];
  for (let s = 0; s < n; s = end[s]) {
    const id = ranks.get(key(s, end[s]));
    if (id !== undefined) out.push(id);
  }
  return out;
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
  const { rankMap, patStr } = gpt2() as unknown as Ranks;
  const bytes = new TextEncoder();
  const out: number[] = [];
  const pattern = new RegExp(patStr, "ug");
  // <|endoftext|> is the one special token, allowed anywhere
  const parts = text.split("<|endoftext|>");
  parts.forEach((part, i) => {
    if (i > 0) out.push(END_OF_TEXT);
    for (const m of part.matchAll(pattern)) {
      const piece = bytes.encode(m[0]);
      const whole = rankMap.get(piece.join(","));
      if (whole !== undefined) out.push(whole);
      // no spread: a piece may be hundreds of thousands of tokens long
      else for (const id of bytePairEncode(piece, rankMap)) out.push(id);
    }
  });
  return out;
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
    for (const id of ids) this.#ids.push(id);
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
