/**
 * The command line's arguments: its usage text, and the options checked into what `main` runs.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { END_OF_TEXT } from "../text/tokenizer.ts";
import { describeSampling, type SamplingField, samplingProblem } from "../engine/_sampling.ts";
import { dtypeOption, intOption, numOption, UsageError } from "./_common.ts";
import type { WeightDType } from "../gpu/weights.ts";
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

export const USAGE_LINE = `Usage: deno run -A mod.ts [options] "prompt"   (or --ids 1,2,3 instead of a prompt)`;

export const USAGE = `${USAGE_LINE}
       deno run -A mod.ts perplexity [options] FILE   (see perplexity --help)
       deno run -A mod.ts serve [options]             (see serve --help)
       deno run -A mod.ts train --data FILE [options]  (see train --help)

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

/** What the command line asks for. */
export interface CliOptions {
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

/**
 * One prompt or `--ids`, and ids the untrained model can take (its vocabulary is known before it is made).
 *
 * @throws {UsageError} When not.
 */
function checkPrompt(ids: string | undefined, positionals: string[], untrained: boolean): void {
  if (ids !== undefined ? positionals.length !== 0 : positionals.length !== 1) {
    throw new UsageError(
      ids !== undefined
        ? "give either --ids or a prompt, not both"
        : positionals.length === 0
        ? "a prompt is required"
        : `expected one prompt, got ${positionals.length}; quote it`,
    );
  }
  if (ids !== undefined && !/^\s*\d+(\s*,\s*\d+)*\s*$/.test(ids)) {
    throw new UsageError(`--ids '${ids}' must be token ids separated by commas, like 15496,11,314`);
  }
  const outside = untrained ? ids?.split(",").map(Number).find((id) => id > END_OF_TEXT) : undefined;
  if (outside !== undefined) {
    throw new UsageError(`--ids: token id ${outside} is outside GPT-2's vocabulary [0, ${END_OF_TEXT + 1})`);
  }
}

/**
 * Where the model comes from: `--weights` or `--model`, not empty; `--revision` and `--offline` only with `--model`.
 *
 * @throws {UsageError} When not.
 */
function checkSource(v: { weights?: string; model?: string; revision?: string; offline?: boolean }): void {
  if (v.weights !== undefined && v.model !== undefined) {
    throw new UsageError("give either --weights or --model, not both");
  }
  if (v.weights === "") throw new UsageError("--weights is empty; give a file or directory");
  if (v.model === "") throw new UsageError("--model is empty; give a name like gpt2");
  if ((v.revision !== undefined || v.offline) && v.model === undefined) {
    throw new UsageError("--revision and --offline go with --model");
  }
}

/** The command line's flags, as `parseArgs` reads them. */
const CLI_OPTIONS = {
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
} as const;

/** Parses the arguments: the options, or an exit code after help, the version or a usage error. */
export function parseCli(args: string[], out: (s: string) => void, err: (s: string) => void): CliOptions | number {
  let values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: CLI_OPTIONS,
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
    checkPrompt(values.ids, positionals, values.weights === undefined && values.model === undefined);
    const temperature = numOption("temperature", values.temperature, 0, -Infinity, Infinity);
    const topP = numOption("top-p", values["top-p"], 1, -Infinity, Infinity);
    const dtype = dtypeOption("dtype", values.dtype, "f32");
    checkSource(values);
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
