/**
 * The command line: `deno run -A mod.ts "Hello, I am"` prints what the book's notebook prints.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { generate, streamIds } from "../model/generate.ts";
import { decode, encode, END_OF_TEXT, TextStreamer } from "../text/tokenizer.ts";
import { describeSampling, type SamplingField, samplingProblem } from "../engine/_sampling.ts";
import { dtypeOption, escapeControls, intOption, numOption, round, UsageError } from "./_common.ts";
import { loadModel } from "../serve/_load.ts";
import type { GPTModel } from "../model/model.ts";
import type { WeightDType } from "../gpu/weights.ts";
import { openWeights } from "../weights/loader.ts";
import { perplexityCommand } from "./_perplexity.ts";
import { serveCommand } from "./_serve.ts";
import denoJson from "../../deno.json" with { type: "json" };

/** The flag of each sampling option. */
const FLAGS: Record<SamplingField, string> = {
  temperature: "--temperature",
  topK: "--top-k",
  topP: "--top-p",
  eosId: "--eos-id",
  seed: "--seed",
};
/** The package version, from `deno.json`. */
export const VERSION: string = denoJson.version;

const USAGE_LINE = `Usage: deno run -A mod.ts [options] "prompt"   (or --ids 1,2,3 instead of a prompt)`;

const USAGE = `${USAGE_LINE}
       deno run -A mod.ts perplexity [options] FILE   (see perplexity --help)
       deno run -A mod.ts serve [options]             (see serve --help)

Generates text with the book's GPTModel on WebGPU. Without --weights the model is GPT_CONFIG_124M
initialised as torch.manual_seed(seed) would, and the output is the notebook's (ids and text).

Options:
  --max-new-tokens N   tokens to generate (default 6)
  --seed N             seed of the random initialisation and of the sampler (default 123)
  --weights PATH       a .safetensors file or a directory with model.safetensors (and config.json):
                       the book's state_dict names or Hugging Face GPT-2 (default: none, random init)
  --model NAME         a GPT-2 model from the Hugging Face hub: gpt2, gpt2-medium, gpt2-large,
                       gpt2-xl or owner/name (downloaded once into ~/.cache/huggingface/hub)
  --revision REV       the branch, tag or commit of --model (default main)
  --offline            use only the cache for --model, send no request (also HF_HUB_OFFLINE=1)
  --dtype f32|f16|q8   how weights are stored on the GPU (default f32; q8: 8-bit, a scale per 32)
  --ids A,B,C          token ids to start from instead of a text prompt (for models with another
                       tokenizer; output ids are printed, and text only for GPT-2's vocabulary)
  --temperature T      sampling temperature; 0 is greedy (default 0)
  --top-k K            sample among the K most likely tokens (default: all)
  --top-p P            sample among the most likely tokens whose probability reaches P (default 1)
  --eos                stop at <|endoftext|> (default: off)
  --stream             print text as it is generated (default: on when stdout is a terminal)
  --no-stream          print the result at the end
  --json               print one JSON object: prompt, ids, text and timings
  --raw                print model text as it is (on a terminal, control characters are shown as \\xNN)
  --quiet              no summary line on stderr
  --debug              print stack traces of errors
  -h, --help           show this help
  -V, --version        show the version`;

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

/** What the command line asks for. */
interface CliOptions {
  prompt: string;
  promptIds?: number[];
  maxNew: number;
  seed: number;
  topK?: number;
  temperature: number;
  topP: number;
  dtype: WeightDType;
  stream: boolean;
  weights?: string;
  model?: string;
  revision?: string;
  offline?: boolean;
  eos: boolean;
  json: boolean;
  raw: boolean;
  quiet: boolean;
  debug: boolean;
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

/** Parses the arguments: the options, or an exit code after help, the version or a usage error. */
function parseCli(args: string[], out: (s: string) => void, err: (s: string) => void): CliOptions | number {
  let values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        "max-new-tokens": { type: "string" },
        seed: { type: "string" },
        weights: { type: "string" },
        model: { type: "string" },
        revision: { type: "string" },
        offline: { type: "boolean" },
        dtype: { type: "string" },
        ids: { type: "string" },
        temperature: { type: "string" },
        "top-k": { type: "string" },
        "top-p": { type: "string" },
        eos: { type: "boolean" },
        stream: { type: "boolean" },
        "no-stream": { type: "boolean" },
        json: { type: "boolean" },
        raw: { type: "boolean" },
        quiet: { type: "boolean" },
        debug: { type: "boolean" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "V" },
      },
    }));
  } catch (e) {
    err(`error: ${(e as Error).message.replace(/\.$/, "")}\n${USAGE_LINE}`);
    return 2;
  }
  if (values.help) {
    out(USAGE);
    return 0;
  }
  if (values.version) {
    out(VERSION);
    return 0;
  }
  try {
    if (values.ids !== undefined ? positionals.length !== 0 : positionals.length !== 1) {
      throw new UsageError(
        values.ids !== undefined
          ? "give either --ids or a prompt, not both"
          : positionals.length === 0
          ? "a prompt is required"
          : `expected one prompt, got ${positionals.length}; quote it`,
      );
    }
    if (values.ids !== undefined && !/^\s*\d+(\s*,\s*\d+)*\s*$/.test(values.ids)) {
      throw new UsageError(`--ids '${values.ids}' must be token ids separated by commas, like 15496,11,314`);
    }
    // the untrained model's vocabulary is known before it is made: check the ids first
    const untrained = values.weights === undefined && values.model === undefined;
    const outside = untrained ? values.ids?.split(",").map(Number).find((id) => id > END_OF_TEXT) : undefined;
    if (outside !== undefined) {
      throw new UsageError(`--ids: token id ${outside} is outside GPT-2's vocabulary [0, ${END_OF_TEXT + 1})`);
    }
    const temperature = numOption("temperature", values.temperature, 0, -Infinity, Infinity);
    const topP = numOption("top-p", values["top-p"], 1, -Infinity, Infinity);
    const dtype = dtypeOption("dtype", values.dtype, "f32");
    if (values.weights !== undefined && values.model !== undefined) {
      throw new UsageError("give either --weights or --model, not both");
    }
    if (values.weights === "") throw new UsageError("--weights is empty; give a file or directory");
    if (values.model === "") throw new UsageError("--model is empty; give a name like gpt2");
    if ((values.revision !== undefined || values.offline) && values.model === undefined) {
      throw new UsageError("--revision and --offline go with --model");
    }
    // the library's sampling rules, worded with the flags' names
    const problem = samplingProblem({
      temperature,
      topK: values["top-k"] === undefined ? undefined : Number(values["top-k"]),
      topP: values["top-p"] === undefined ? undefined : topP,
    }, Infinity);
    if (problem) throw new UsageError(describeSampling(problem, FLAGS[problem.field]));
    if (values.stream && values["no-stream"]) throw new UsageError("--stream and --no-stream contradict each other");
    if (values.json && values.stream) throw new UsageError("--json and --stream cannot be combined");
    const opts: CliOptions = {
      prompt: positionals[0] ?? "",
      promptIds: values.ids === undefined ? undefined : values.ids.split(",").map((x) => Number(x.trim())),
      maxNew: intOption("max-new-tokens", values["max-new-tokens"], 6, 0),
      seed: intOption("seed", values.seed, 123, 0),
      topK: values["top-k"] === undefined ? undefined : intOption("top-k", values["top-k"], 0, -Infinity),
      temperature,
      topP,
      dtype,
      stream: values.json ? false : values.stream ?? (values["no-stream"] ? false : Deno.stdout.isTerminal()),
      weights: values.weights,
      model: values.model,
      revision: values.revision,
      offline: values.offline,
      eos: Boolean(values.eos),
      json: Boolean(values.json),
      raw: values.raw ?? !Deno.stdout.isTerminal(),
      quiet: Boolean(values.quiet),
      debug: Boolean(values.debug),
    };
    if (!opts.promptIds && opts.prompt.length === 0) {
      throw new UsageError("the prompt is empty; give some text to continue");
    }
    return opts;
  } catch (e) {
    err(`error: ${(e as Error).message}\n${USAGE_LINE}`);
    return 2;
  }
}

/** Loads or creates the model, generates, and prints the result and the summary. */
async function run(opts: CliOptions, io: Io): Promise<void> {
  const { out, err, write } = io;
  // model text on a terminal: control characters (escape sequences included) shown, not obeyed
  const show = (t: string) => (opts.raw ? t : escapeControls(t));
  if (opts.weights && opts.promptIds) {
    // the file's header names its vocabulary: check the ids before loading the weights
    const src = await openWeights(opts.weights);
    const V = src.config.vocab_size;
    src.close();
    const outside = opts.promptIds.find((id) => id >= V);
    if (outside !== undefined) {
      throw new UsageError(`--ids: token id ${outside} is outside the model's vocabulary [0, ${V})`);
    }
  }
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
