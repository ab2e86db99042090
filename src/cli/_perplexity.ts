/**
 * `deno run -A mod.ts perplexity FILE`: the perplexity of a text file under a model, and with
 * `--compare-dtype` how far the same weights stored another way are from it.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { compareModels, perplexity } from "../model/evaluate.ts";
import { encode } from "../text/tokenizer.ts";
import { dtypeOption, intOption, UsageError } from "./_common.ts";
import { loadModel, type ModelSource } from "../serve/_load.ts";
import type { WeightDType } from "../gpu/weights.ts";

const USAGE_LINE = "Usage: deno run -A mod.ts perplexity [options] FILE";

/** The help of the perplexity command. */
export const PERPLEXITY_USAGE = `${USAGE_LINE}

The perplexity of a text file (UTF-8, GPT-2's tokenizer) under the model, by sliding windows of
context_length tokens that start every --stride tokens (Hugging Face's method; each token after
the first is scored once). Without --weights or --model the model is the seed-123 untrained one.

Options:
  --weights PATH         a .safetensors file or a directory with model.safetensors
  --model NAME           a GPT-2 model from the Hugging Face hub (gpt2, gpt2-medium, ...)
  --revision REV         the revision of --model (default main)
  --offline              use only the hub cache
  --dtype f32|f16|q8     how weights are stored (default f32)
  --stride N             tokens between window starts (default half the context)
  --compare-dtype D      also load the weights as D and report its mean KL divergence from
                         --dtype's distributions and the top-1 agreement over the same text
  --json                 print one JSON object: perplexity, tokens, windows (and the comparison)
  --seed N               seed of the untrained model (default 123)
  --quiet                no progress on stderr
  -h, --help`;

/** The perplexity command's options, checked. */
type PerplexityArgs = ModelSource & { file: string; stride?: number; compare?: WeightDType; json: boolean };

/**
 * Checks the perplexity command's arguments.
 *
 * @param args The arguments after `perplexity`.
 * @returns The options, or `"help"`.
 * @throws {UsageError} On a bad argument.
 */
function parsePerplexityArgs(args: string[]): PerplexityArgs | "help" {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      weights: { type: "string" },
      model: { type: "string" },
      revision: { type: "string" },
      offline: { type: "boolean" },
      dtype: { type: "string" },
      stride: { type: "string" },
      "compare-dtype": { type: "string" },
      json: { type: "boolean" },
      seed: { type: "string" },
      quiet: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return "help";
  if (positionals.length !== 1) throw new UsageError(`expected one text file, got ${positionals.length}`);
  if (values.weights !== undefined && values.model !== undefined) {
    throw new UsageError("give either --weights or --model, not both");
  }
  return {
    file: positionals[0],
    weights: values.weights,
    model: values.model,
    revision: values.revision,
    offline: values.offline,
    dtype: dtypeOption("dtype", values.dtype, "f32"),
    compare: dtypeOption("compare-dtype", values["compare-dtype"], undefined),
    stride: values.stride === undefined ? undefined : intOption("stride", values.stride, 0, 1),
    seed: intOption("seed", values.seed, 123, 0),
    json: Boolean(values.json),
    quiet: Boolean(values.quiet),
  };
}

/** The text file's contents, or undefined after one line on `err` saying why it cannot be read. */
async function readText(file: string, err: (s: string) => void): Promise<string | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound
      ? "no such file"
      : e instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : e instanceof Deno.errors.IsADirectory
      ? "it is a directory"
      : (e as Error).message;
    err(`error: cannot read '${file}': ${why}; give the path of a text file`);
    return undefined;
  }
  return text;
}

/**
 * Runs the perplexity command.
 *
 * @param args The arguments after `perplexity`.
 * @param out Where the result goes.
 * @param err Where errors and progress go.
 * @returns The exit code: 0, 1 on a runtime error, 2 on a usage error.
 */
export async function perplexityCommand(
  args: string[],
  out: (s: string) => void,
  err: (s: string) => void,
): Promise<number> {
  let o: PerplexityArgs;
  try {
    const parsed = parsePerplexityArgs(args);
    if (parsed === "help") {
      out(PERPLEXITY_USAGE);
      return 0;
    }
    o = parsed;
  } catch (e) {
    err(`error: ${(e as Error).message.replace(/\.$/, "")}\n${USAGE_LINE}`);
    return 2;
  }
  try {
    const text = await readText(o.file, err);
    if (text === undefined) return 1;
    const ids = encode(text);
    if (ids.length < 2) {
      err(
        `error: '${o.file}' has ${ids.length} token${
          ids.length === 1 ? "" : "s"
        }; perplexity needs a text of at least 2`,
      );
      return 1;
    }
    const tty = Deno.stderr.isTerminal();
    const onProgress = o.quiet ? undefined : (done: number, total: number) => {
      if (tty) {
        Deno.stderr.writeSync(new TextEncoder().encode(`\rwindows ${done} / ${total}${done === total ? "\n" : ""}`));
      } else if (done === total || done % Math.max(1, Math.ceil(total / 10)) === 0) err(`windows ${done} / ${total}`);
    };
    using model = await loadModel(o, err);
    const result: Record<string, unknown> = {
      file: o.file,
      dtype: o.dtype,
      ...(await perplexity(model, ids, { stride: o.stride, onProgress })),
    };
    if (o.compare) {
      using other = await loadModel({ ...o, dtype: o.compare }, err);
      const c = await compareModels(model, other, ids, { stride: o.stride, onProgress });
      const p = await perplexity(other, ids, { stride: o.stride });
      result.compare = { dtype: o.compare, mean_kl: c.meanKl, top1: c.top1, perplexity: p.perplexity };
    }
    if (o.json) out(JSON.stringify(result));
    else {
      out(
        `perplexity ${
          (result.perplexity as number).toFixed(4)
        } (${o.dtype}; ${result.tokens} tokens, ${result.windows} windows)`,
      );
      const c = result.compare as { dtype: string; mean_kl: number; top1: number; perplexity: number } | undefined;
      if (c) {
        out(
          `${c.dtype} against ${o.dtype}: mean KL ${c.mean_kl.toExponential(3)} nats, top-1 agreement ${
            (100 * c.top1).toFixed(2)
          }%, perplexity ${c.perplexity.toFixed(4)}`,
        );
      }
    }
    return 0;
  } catch (e) {
    err(`error: ${(e as Error).message}`);
    return 1;
  }
}
