/**
 * The yardsticks of a model on a text: perplexity, and how far one model's predictions are from
 * another's (the same weights stored another way, say). Texts longer than the context are scored
 * by sliding windows, the method of Hugging Face's perplexity guide: windows of `context_length`
 * tokens start every `stride` tokens, and each window scores only the targets the previous one
 * did not, so every token after the first is scored once, with at least `context_length - stride`
 * tokens of context once the text is long enough.
 *
 * @module
 */

import type { GPTModel } from "./model.ts";
import { runnerOf } from "../engine/_runner_of.ts";
import { compareLogits, tokenLosses } from "../engine/_scoring.ts";
import { checkBatch } from "../engine/_batch.ts";
import { checkOptions } from "../engine/_options.ts";

/** Options for {@linkcode perplexity} and {@linkcode compareModels}. */
export interface EvaluateOptions {
  /** Tokens between window starts, 1 to `context_length` (default half the context). */
  stride?: number;
  /** Called after each window with the windows done and in all. */
  onProgress?: (done: number, total: number) => void;
  /** Stops between windows; the call then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** The perplexity of a text under a model. */
export interface PerplexityResult {
  /** `exp(loss)`. */
  perplexity: number;
  /** The mean cross-entropy of the scored tokens, in nats. */
  loss: number;
  /** Tokens scored (all but the first). */
  tokens: number;
  /** Windows run. */
  windows: number;
}

/** How a model's next-token distributions differ from a reference model's. */
export interface ComparisonResult {
  /** The mean KL divergence of the model's distribution from the reference's, in nats. */
  meanKl: number;
  /** The share of positions where both pick the same most likely token. */
  top1: number;
  /** Positions compared. */
  tokens: number;
  /** Windows run. */
  windows: number;
}

/** One window: inputs `ids[begin, end)`, targets `ids[begin + 1, end]`, scored from input position `from`. */
interface Window {
  begin: number;
  end: number;
  from: number;
}

function plan(model: GPTModel, ids: number[], options: EvaluateOptions, what: string): Window[] {
  if (options === null || typeof options !== "object") {
    throw new TypeError(`Cannot ${what}: options must be an object like { stride: 512 }`);
  }
  checkOptions(options, ["stride", "onProgress", "signal"], what);
  checkBatch([ids], model.config.vocab_size, what);
  if (ids.length < 2) {
    throw new RangeError(`Cannot ${what}: the text has ${ids.length} token, at least 2 are needed to predict one`);
  }
  const ctx = model.config.context_length;
  const stride = options.stride ?? Math.max(1, Math.floor(ctx / 2));
  if (!Number.isInteger(stride) || stride < 1 || stride > ctx) {
    throw new RangeError(`Cannot ${what}: stride '${stride}' must be an integer from 1 to the context length ${ctx}`);
  }
  const windows: Window[] = [];
  let prevEnd = 0; // targets up to this index are scored
  for (let begin = 0;; begin += stride) {
    const end = Math.min(begin + ctx, ids.length - 1);
    if (end > prevEnd) windows.push({ begin, end, from: prevEnd - begin });
    prevEnd = end;
    if (end === ids.length - 1) break;
  }
  return windows;
}

async function eachWindow(
  windows: Window[],
  ids: number[],
  options: EvaluateOptions,
  score: (inputs: Uint32Array, targets: Uint32Array, w: Window) => Promise<void>,
): Promise<void> {
  for (const [i, w] of windows.entries()) {
    options.signal?.throwIfAborted();
    await score(new Uint32Array(ids.slice(w.begin, w.end)), new Uint32Array(ids.slice(w.begin + 1, w.end + 1)), w);
    options.onProgress?.(i + 1, windows.length);
  }
}

/**
 * The perplexity of a token sequence under a model. With a text shorter than the context it is
 * `exp(loss(ids[:-1], ids[1:]))`, one window.
 *
 * @param model The model.
 * @param ids The text's token ids.
 * @param options Stride, progress, cancellation.
 * @returns The perplexity, the mean loss, and the tokens and windows scored.
 * @throws {RangeError} On fewer than 2 tokens, an id outside the vocabulary or a bad stride.
 * @example
 * ```ts ignore
 * const { perplexity: ppl } = await perplexity(model, encode(theVerdict)); // the book's short story, as text
 * ```
 */
export async function perplexity(
  model: GPTModel,
  ids: number[],
  options: EvaluateOptions = {},
): Promise<PerplexityResult> {
  const windows = plan(model, ids, options, "compute the perplexity");
  const r = runnerOf(model);
  let sum = 0;
  let n = 0;
  await eachWindow(windows, ids, options, async (inputs, targets, w) => {
    const losses = await tokenLosses(r, inputs, targets, { B: 1, T: inputs.length });
    for (let p = w.from; p < losses.length; p++) sum += losses[p];
    n += losses.length - w.from;
  });
  const loss = sum / n;
  return { perplexity: Math.exp(loss), loss, tokens: n, windows: windows.length };
}

/**
 * How a model's next-token distributions differ from a reference's over a text: the mean KL
 * divergence `KL(reference || model)` and the top-1 agreement, at every position scored as by
 * {@linkcode perplexity}. Both models must share the vocabulary and the context length.
 *
 * @param reference The reference model (e.g. float32 weights).
 * @param model The model to compare (e.g. the same weights in 16 bits).
 * @param ids The text's token ids.
 * @param options Stride, progress, cancellation.
 * @returns The mean divergence in nats, the agreement, and the positions and windows compared.
 * @throws {RangeError} On models that cannot be compared, fewer than 2 tokens, or a bad stride.
 * @example
 * ```ts ignore
 * const { meanKl, top1 } = await compareModels(f32Model, f16Model, encode(text));
 * ```
 */
export async function compareModels(
  reference: GPTModel,
  model: GPTModel,
  ids: number[],
  options: EvaluateOptions = {},
): Promise<ComparisonResult> {
  if (reference === model) throw new RangeError("Cannot compare a model with itself: pass two models");
  if (reference.config.context_length !== model.config.context_length) {
    throw new RangeError(
      `Cannot compare the models: their context lengths ${reference.config.context_length} and ${model.config.context_length} differ`,
    );
  }
  const windows = plan(reference, ids, options, "compare the models");
  const a = runnerOf(reference);
  const b = runnerOf(model);
  let kl = 0;
  let agree = 0;
  let n = 0;
  await eachWindow(windows, ids, options, async (inputs, _targets, w) => {
    const c = await compareLogits(a, b, inputs, { B: 1, T: inputs.length });
    for (let p = w.from; p < c.kl.length; p++) {
      kl += c.kl[p];
      agree += c.agree[p];
    }
    n += c.kl.length - w.from;
  });
  return { meanKl: kl / n, top1: agree / n, tokens: n, windows: windows.length };
}
