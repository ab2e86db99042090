/**
 * The prompt cache's bookkeeping: which tokens each free slot's keys and values hold, and which
 * free slot a new request takes.
 *
 * @module
 */

/**
 * What each slot's key/value cache holds once its request has left: the tokens that ran through
 * the model there. A new request takes the free slot that shares the longest prefix with its
 * prompt, else the one left longest ago.
 */
export class SlotCache {
  #tokens: (Uint32Array | undefined)[];
  #used: number[];
  #clock = 0;

  /** @param slots The batcher's slots. */
  constructor(slots: number) {
    this.#tokens = new Array(slots);
    this.#used = new Array(slots).fill(0);
  }

  /** Remembers what a slot holds as its request leaves. */
  keep(slot: number, prompt: Uint32Array, generated: readonly number[]): void {
    const t = new Uint32Array(prompt.length + generated.length);
    t.set(prompt);
    t.set(generated, prompt.length);
    this.#tokens[slot] = t;
    this.#used[slot] = ++this.#clock;
  }

  /** Forgets every slot (after a failed run, what they hold is unknown). */
  clear(): void {
    this.#tokens.fill(undefined);
  }

  /**
   * Takes a free slot for a prompt (none: no reuse) and says how many of its tokens are cached:
   * at most all but the last, whose logits the request needs.
   */
  take(free: number[], prompt?: Uint32Array): { slot: number; cached: number } {
    let best = -1;
    let cached = 0;
    if (prompt) {
      for (let i = 0; i < free.length; i++) {
        const t = this.#tokens[free[i]];
        if (!t) continue;
        const n = Math.min(t.length, prompt.length - 1);
        let k = 0;
        while (k < n && t[k] === prompt[k]) k++;
        if (k > cached) [best, cached] = [i, k];
      }
    }
    if (best < 0) {
      // the slot left longest ago (never used: first), so that recent prefixes stay longest
      best = 0;
      for (let i = 1; i < free.length; i++) if (this.#used[free[i]] < this.#used[free[best]]) best = i;
    }
    const [slot] = free.splice(best, 1);
    this.#tokens[slot] = undefined;
    return { slot, cached };
  }
}
