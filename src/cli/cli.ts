/**
 * The command line: `deno run -A mod.ts "Hello, I am"` prints what the book's notebook prints.
 *
 * @module
 */

import { generate, streamIds } from "../model/generate.ts";
import { decode, encode, END_OF_TEXT, TextStreamer } from "../text/tokenizer.ts";
import { escapeControls, round, UsageError } from "./_common.ts";
import { type CliOptions, parseCli, USAGE_LINE, VERSION } from "./_args.ts";
import { loadModel } from "../serve/_load.ts";
import type { GPTModel } from "../model/model.ts";
import { openWeights } from "../weights/loader.ts";
import { perplexityCommand } from "./_perplexity.ts";
import { serveCommand } from "./_serve.ts";
import { trainCommand } from "./_train.ts";

export { VERSION };

/**
 * Runs the command line with the given arguments, writing to `out` (stdout) and `err` (stderr).
 *
 * @param args The arguments, without the program name.
 * @param out Where results go (one call per line).
 * @param err Where errors and the summary go.
 * @param write Where streamed text goes (no newline added; default stdout).
 * @returns The exit code: 0 on success, 1 on a runtime error, 2 on a usage error.
 */
export async function main(
  args: string[] = Deno.args,
  out: (s: string) => void = console.log,
  err: (s: string) => void = console.error,
  write: (s: string) => void = (s) => Deno.stdout.writeSync(new TextEncoder().encode(s)),
): Promise<number> {
  if (args[0] === "perplexity") return await perplexityCommand(args.slice(1), out, err);
  if (args[0] === "serve") return await serveCommand(args.slice(1), out, err);
  if (args[0] === "train") return await trainCommand(args.slice(1), out, err);
  const parsed = parseCli(args, out, err);
  if (typeof parsed === "number") return parsed;
  try {
    await run(parsed, { out, err, write });
    return 0;
  } catch (e) {
    // the reader went away (`| head`): nothing more to say
    if (e instanceof Deno.errors.BrokenPipe) return 0;
    if (e instanceof UsageError) {
      err(`error: ${e.message}\n${USAGE_LINE}`);
      return 2;
    }
    if (e instanceof Interrupted) {
      err("interrupted");
      return 130;
    }
    err(parsed.debug ? `error: ${(e as Error).stack}` : `error: ${(e as Error).message}`);
    return 1;
  }
}

/** Ctrl-C during a generation. */
class Interrupted extends Error {
  constructor() {
    super("interrupted");
    this.name = "Interrupted";
  }
}

/** Where output goes. */
interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  write: (s: string) => void;
}

/** The file's header names its vocabulary: `--ids` are checked before the weights are loaded. */
async function checkIds(weights: string, ids: number[]): Promise<void> {
  const src = await openWeights(weights);
  const V = src.config.vocab_size;
  src.close();
  const outside = ids.find((id) => id >= V);
  if (outside !== undefined) {
    throw new UsageError(`--ids: token id ${outside} is outside the model's vocabulary [0, ${V})`);
  }
}

/** Loads or creates the model, generates, and prints the result and the summary. */
async function run(opts: CliOptions, io: Io): Promise<void> {
  const { out, err, write } = io;
  // model text on a terminal: control characters (escape sequences included) shown, not obeyed
  const show = (t: string) => (opts.raw ? t : escapeControls(t));
  if (opts.weights && opts.promptIds) await checkIds(opts.weights, opts.promptIds);
  const t0 = performance.now();
  using model = await loadModel(opts, err);
  const loadMs = performance.now() - t0;
  // the tokenizer is built after the model, so its memory and the loader's do not add up
  const encoded = opts.promptIds ?? encode(opts.prompt);
  const plain = !opts.stream && !opts.json;
  if (plain) {
    out(`encoded: [${encoded.join(", ")}]`);
    out(`encoded_tensor.shape: [1, ${encoded.length}]`);
  }
  const gen = {
    maxNewTokens: opts.maxNew,
    contextSize: model.config.context_length,
    temperature: opts.temperature,
    topK: opts.temperature > 0 ? opts.topK : undefined,
    topP: opts.temperature > 0 ? opts.topP : undefined,
    seed: opts.seed,
    eosId: opts.eos ? END_OF_TEXT : undefined,
  };
  let prefillMs = NaN;
  let ids: number[];
  // Ctrl-C stops the generation within a chunk: the text so far stays printed, the exit code is 130
  const stop = new AbortController();
  const interrupt = () => stop.abort(new Interrupted());
  const listen = (on: boolean) => {
    try {
      if (on) Deno.addSignalListener("SIGINT", interrupt);
      else Deno.removeSignalListener("SIGINT", interrupt);
    } catch { /* no signals here: Ctrl-C ends the process as usual */ }
  };
  listen(true);
  const t1 = performance.now();
  const onStep = (n: number, ms: number) => {
    if (n === 1 && Number.isNaN(prefillMs)) prefillMs = ms;
  };
  if (opts.stream) {
    const gpt2 = model.config.vocab_size === END_OF_TEXT + 1;
    write(show(gpt2 ? (opts.promptIds ? decode(opts.promptIds) : opts.prompt) : encoded.join(" ")));
    const text = new TextStreamer();
    ids = encoded.slice();
    try {
      const parts = streamIds(model, encoded, { ...gen, chunkSize: 8, onProgress: onStep, signal: stop.signal });
      for await (const part of parts) {
        ids.push(...part);
        write(show(gpt2 ? text.push(part) : ` ${part.join(" ")}`));
      }
      write(show(gpt2 ? text.flush() : "") + "\n");
    } finally {
      listen(false);
    }
    stop.signal.throwIfAborted();
  } else {
    try {
      ids = (await generate(model, [encoded], { ...gen, onProgress: onStep, signal: stop.signal }))[0];
    } finally {
      listen(false);
    }
  }
  const genMs = performance.now() - t1;
  const newTokens = ids.length - encoded.length;
  const tokS = newTokens > 1 && !Number.isNaN(prefillMs) ? (newTokens - 1) / ((genMs - prefillMs) / 1000) : NaN;
  report({ ...io, out: (t) => out(show(t)) }, opts, {
    model,
    encoded,
    ids,
    plain,
    loadMs,
    prefillMs,
    genMs,
    newTokens,
    tokS,
  });
}

/** Prints the result (the notebook's lines, or JSON) and the summary line. */
function report(
  io: Io,
  opts: CliOptions,
  r: {
    model: GPTModel;
    encoded: number[];
    ids: number[];
    plain: boolean;
    loadMs: number;
    prefillMs: number;
    genMs: number;
    newTokens: number;
    tokS: number;
  },
): void {
  const { out, err } = io;
  const { model, encoded, ids, plain, loadMs, prefillMs, genMs, newTokens, tokS } = r;
  const text = decodeSafe(ids, model.config.vocab_size);
  if (opts.json) {
    out(JSON.stringify({
      prompt: opts.prompt,
      prompt_ids: encoded,
      ids,
      text,
      new_text: decodeSafe(ids.slice(encoded.length), model.config.vocab_size),
      timings: {
        load_ms: round(loadMs),
        prefill_ms: round(prefillMs),
        generate_ms: round(genMs),
        decode_tokens_per_s: round(tokS),
      },
      adapter: model.adapter,
    }));
  } else if (plain) {
    out(`Output: [[${ids.join(", ")}]]`);
    out(`Output length: ${ids.length}`);
    out(text);
  }
  if (!opts.quiet) {
    err(
      `prompt tokens ${encoded.length}, new tokens ${newTokens}, load ${round(loadMs)} ms, prefill ${
        round(prefillMs)
      } ms, ${Number.isNaN(tokS) ? "-" : tokS.toFixed(1)} tokens/s (${model.adapter}, ${model.dtype})`,
    );
  }
}

/** GPT-2 text of ids, or the ids themselves when the model's vocabulary is not GPT-2's. */
function decodeSafe(ids: number[], vocab: number): string {
  return vocab === END_OF_TEXT + 1 ? decode(ids) : `(ids of a ${vocab}-token vocabulary: ${ids.join(" ")})`;
}
