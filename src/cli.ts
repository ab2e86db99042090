/**
 * The command line: `deno run -A mod.ts "Hello, I am"` prints what the book's notebook prints.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { GPT_CONFIG_124M } from "./config.ts";
import { GPTModel } from "./model.ts";
import { generate } from "./generate.ts";
import { decode, encode } from "./tokenizer.ts";
import denoJson from "../deno.json" with { type: "json" };

/** The package version, from `deno.json`. */
export const VERSION: string = denoJson.version;

const USAGE = `Usage: deno run -A mod.ts [options] "prompt"

Generates text with the book's GPTModel (GPT_CONFIG_124M) on WebGPU, greedily, like
generate_text_simple. Without weights the model is initialised as torch.manual_seed(seed) would.

Options:
  --max-new-tokens N   tokens to generate (default 6)
  --seed N             seed of the random initialisation (default 123)
  --weights PATH       a .safetensors file or a directory with model.safetensors (and config.json):
                       the book's state_dict names or Hugging Face GPT-2 (default: none, random init)
  --dtype f32|f16      how weights are stored on the GPU (default f32)
  -h, --help           show this help
  -V, --version        show the version`;

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

function intOption(name: string, raw: string | undefined, def: number, min: number): number {
  if (raw === undefined) return def;
  const n = Number(raw);
  if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`--${name} '${raw}' must be an integer of at least ${min}`);
  }
  return n;
}

/** A progress reporter for loading: one line updated in place on a terminal, else a line per 10%. */
function progress(err: (s: string) => void): (done: number, total: number) => void {
  const tty = Deno.stderr.isTerminal();
  let lastTenth = -1;
  const mb = (b: number) => (b / 1e6).toFixed(1);
  return (done, total) => {
    const pct = total > 0 ? Math.floor((done / total) * 100) : 100;
    const line = `loading weights: ${mb(done)} / ${mb(total)} MB (${pct}%)`;
    if (tty) {
      Deno.stderr.writeSync(new TextEncoder().encode(`\r${line}${done >= total ? "\n" : ""}`));
    } else if (Math.floor(pct / 10) > lastTenth || done >= total) {
      lastTenth = Math.floor(pct / 10);
      err(line);
    }
  };
}

/**
 * Runs the command line with the given arguments, writing to `out` (stdout) and `err` (stderr).
 *
 * @param args The arguments, without the program name.
 * @param out Where results go.
 * @param err Where errors go.
 * @returns The exit code: 0 on success, 1 on a runtime error, 2 on a usage error.
 */
export async function main(
  args: string[] = Deno.args,
  out: (s: string) => void = console.log,
  err: (s: string) => void = console.error,
): Promise<number> {
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
        dtype: { type: "string" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "V" },
      },
    }));
    if (values.help) {
      out(USAGE);
      return 0;
    }
    if (values.version) {
      out(VERSION);
      return 0;
    }
    if (positionals.length !== 1) {
      throw new UsageError(
        positionals.length === 0 ? "a prompt is required" : `expected one prompt, got ${positionals.length}; quote it`,
      );
    }
  } catch (e) {
    const msg = e instanceof UsageError ? e.message : (e as Error).message.replace(/\.$/, "");
    err(`error: ${msg}\n${USAGE.split("\n")[0]}`);
    return 2;
  }
  try {
    const maxNew = intOption("max-new-tokens", values["max-new-tokens"], 6, 0);
    const seed = intOption("seed", values.seed, 123, 0);
    const dtype = values.dtype ?? "f32";
    if (dtype !== "f32" && dtype !== "f16") throw new UsageError(`--dtype '${dtype}' must be f32 or f16`);
    const prompt = positionals[0];
    const encoded = encode(prompt);
    if (encoded.length === 0) throw new UsageError("the prompt is empty; give some text to continue");
    out(`encoded: [${encoded.join(", ")}]`);
    out(`encoded_tensor.shape: [1, ${encoded.length}]`);
    using model = values.weights
      ? await GPTModel.load(values.weights, { dtype, onProgress: progress(err) })
      : await GPTModel.create(GPT_CONFIG_124M, { seed, dtype });
    // generate() keeps a key/value cache; its ids are those of generateTextSimple()
    const ids = await generate(model, [encoded], { maxNewTokens: maxNew, contextSize: model.config.context_length });
    out(`Output: [[${ids[0].join(", ")}]]`);
    out(`Output length: ${ids[0].length}`);
    out(decode(ids[0]));
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      err(`error: ${e.message}\n${USAGE.split("\n")[0]}`);
      return 2;
    }
    err(`error: ${(e as Error).message}`);
    return 1;
  }
}
