/**
 * `deno run -A mod.ts train --data FILE`: chapter 5's `main()`. The seed-123 model (GPT-2 124M's
 * shape, or a checkpoint), 90% of the text for training and 10% for validation, AdamW, and
 * `train_model_simple`'s printed lines; then the checkpoint and the loss plot.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { GPT_CONFIG_124M, type GPTConfig } from "../weights/config.ts";
import { GPTModel } from "../model/model.ts";
import { createDataloaderV1 } from "../train/dataloader.ts";
import { AdamW } from "../train/optimizer.ts";
import { trainModelSimple, type TrainResult } from "../train/train.ts";
import { plotLosses } from "../train/plot.ts";
import { intOption, numOption, UsageError } from "./_common.ts";
import { loadProgress } from "../serve/_progress.ts";

const USAGE_LINE = "Usage: deno run -A mod.ts train --data FILE [options]";

/** The help of the train command. */
export const TRAIN_USAGE = `${USAGE_LINE}

Pretrains the book's GPTModel on a text file as chapter 5's main() does: torch.manual_seed(--seed),
GPTModel (GPT-2 124M's shape), the first 90% of the text for training and the rest for validation
in windows of --context tokens, AdamW, and train_model_simple's lines: "Ep 1 (Step 000000): Train
loss ..., Val loss ..." every --eval-freq steps and a sample after each epoch. Ctrl-C stops at the
end of a step (and saves with --out).

Options:
  --data FILE            the text (UTF-8; GPT-2's tokenizer)
  --epochs N             passes over the training text (default 10)
  --batch-size N         windows per step (default 2)
  --context N            tokens per window and the model's context_length (default 256)
  --lr X                 AdamW's learning rate (default 0.0004)
  --weight-decay X       AdamW's weight decay (default 0.1)
  --drop-rate X          dropout in training (default 0.1; 0 for results equal to PyTorch's)
  --seed N               seed of the weights and the shuffling (default 123)
  --eval-freq N          evaluate every N steps (default 5)
  --eval-iter N          batches per evaluation (default 5)
  --start-context TEXT   the samples' prompt (default "Every effort moves you")
  --weights PATH         start from a checkpoint (the book's names) instead of new weights
  --emb-dim N, --n-layers N, --n-heads N
                         a smaller model than GPT-2 124M (new weights only)
  --out PATH             write the trained model (safetensors, the book's state_dict names)
  --plot PATH            write the losses against epochs and tokens seen (SVG)
  --quiet                no progress bar
  -h, --help`;

interface TrainArgs {
  data: string;
  epochs: number;
  batchSize: number;
  context: number;
  lr: number;
  weightDecay: number;
  dropRate: number;
  seed: number;
  evalFreq: number;
  evalIter: number;
  startContext: string;
  weights?: string;
  config: Partial<GPTConfig>;
  out?: string;
  plot?: string;
  quiet: boolean;
}

function parseTrainArgs(args: string[]): TrainArgs | "help" {
  const str = { type: "string" } as const;
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      data: str,
      epochs: str,
      "batch-size": str,
      context: str,
      lr: str,
      "weight-decay": str,
      "drop-rate": str,
      seed: str,
      "eval-freq": str,
      "eval-iter": str,
      "start-context": str,
      weights: str,
      "emb-dim": str,
      "n-layers": str,
      "n-heads": str,
      out: str,
      plot: str,
      quiet: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return "help";
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument '${positionals[0]}'; give the text with --data`);
  }
  if (values.data === undefined) throw new UsageError("--data FILE is required: the text to train on");
  const config: Partial<GPTConfig> = {};
  if (values["emb-dim"] !== undefined) config.emb_dim = intOption("emb-dim", values["emb-dim"], 0, 4);
  if (values["n-layers"] !== undefined) config.n_layers = intOption("n-layers", values["n-layers"], 0, 1);
  if (values["n-heads"] !== undefined) config.n_heads = intOption("n-heads", values["n-heads"], 0, 1);
  if (values.weights !== undefined && Object.keys(config).length > 0) {
    throw new UsageError("--emb-dim, --n-layers and --n-heads shape new weights; leave them out with --weights");
  }
  return {
    data: values.data,
    epochs: intOption("epochs", values.epochs, 10, 1),
    batchSize: intOption("batch-size", values["batch-size"], 2, 1),
    context: intOption("context", values.context, 256, 2),
    lr: numOption("lr", values.lr, 4e-4, 0, 10),
    weightDecay: numOption("weight-decay", values["weight-decay"], 0.1, 0, 10),
    dropRate: numOption("drop-rate", values["drop-rate"], 0.1, 0, 0.99),
    seed: intOption("seed", values.seed, 123, 0),
    evalFreq: intOption("eval-freq", values["eval-freq"], 5, 1),
    evalIter: intOption("eval-iter", values["eval-iter"], 5, 1),
    startContext: values["start-context"] ?? "Every effort moves you",
    weights: values.weights,
    config,
    out: values.out,
    plot: values.plot,
    quiet: Boolean(values.quiet),
  };
}

/** Ctrl-C as an abort signal, while `run` runs. */
async function withInterrupt<T>(run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const stop = new AbortController();
  const interrupt = () => stop.abort();
  try {
    Deno.addSignalListener("SIGINT", interrupt);
  } catch { /* no signals here */ }
  try {
    return await run(stop.signal);
  } finally {
    try {
      Deno.removeSignalListener("SIGINT", interrupt);
    } catch { /* as above */ }
  }
}

/** A progress bar on a terminal's stderr, cleared before each printed line. */
function progressBar(total: number, quiet: boolean) {
  const tty = !quiet && Deno.stderr.isTerminal();
  const enc = new TextEncoder();
  const t0 = performance.now();
  let shown = false;
  return {
    clear() {
      if (shown) Deno.stderr.writeSync(enc.encode("\r\x1b[K"));
      shown = false;
    },
    draw(step: number, loss: number, tokens: number) {
      if (!tty) return;
      const w = 30, done = Math.min(w, Math.round((step / total) * w));
      const rate = tokens / ((performance.now() - t0) / 1000);
      const bar = `[${"#".repeat(done)}${".".repeat(w - done)}]`;
      Deno.stderr.writeSync(
        enc.encode(`\r\x1b[K${bar} step ${step}/${total}, loss ${loss.toFixed(3)}, ${rate.toFixed(0)} tokens/s`),
      );
      shown = true;
    },
  };
}

/**
 * Runs the train command.
 *
 * @param args The arguments after `train`.
 * @param out Where the book's lines go.
 * @param err Where errors and progress go.
 * @returns The exit code: 0, 1 on a runtime error, 2 on a usage error, 130 when interrupted.
 */
export async function trainCommand(
  args: string[],
  out: (s: string) => void,
  err: (s: string) => void,
): Promise<number> {
  let o: TrainArgs;
  let text: string;
  try {
    const parsed = parseTrainArgs(args);
    if (parsed === "help") {
      out(TRAIN_USAGE);
      return 0;
    }
    o = parsed;
    text = await readData(o.data);
  } catch (e) {
    err(`error: ${(e as Error).message.replace(/\.$/, "")}\n${USAGE_LINE}`);
    return 2;
  }
  try {
    return await train(o, text, out, err);
  } catch (e) {
    err(`error: ${(e as Error).message}`);
    return 1;
  }
}

async function readData(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound
      ? "no such file"
      : e instanceof Deno.errors.IsADirectory
      ? "it is a directory"
      : (e as Error).message;
    throw new UsageError(`cannot read --data '${path}': ${why}; give the path of a text file`);
  }
}

async function train(o: TrainArgs, text: string, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const chars = Array.from(text);
  const split = Math.floor(0.9 * chars.length);
  const model = o.weights
    ? await GPTModel.load(o.weights, { trainable: true, onProgress: o.quiet ? undefined : loadProgress(err) })
    : await GPTModel.create(
      { ...GPT_CONFIG_124M, ...o.config, context_length: o.context, drop_rate: o.dropRate },
      { seed: o.seed, trainable: true },
    );
  using _ = model;
  const ctx = Math.min(o.context, model.config.context_length);
  const common = { batchSize: o.batchSize, maxLength: ctx, stride: ctx, generator: model.generator };
  const trainLoader = createDataloaderV1(chars.slice(0, split).join(""), { ...common, shuffle: true, dropLast: true });
  const valLoader = createDataloaderV1(chars.slice(split).join(""), { ...common, shuffle: false, dropLast: false });
  if (trainLoader.length === 0 || valLoader.length === 0) {
    const which = trainLoader.length === 0 ? "training (the first 90%)" : "validation (the last 10%)";
    err(
      `error: '${o.data}' is too short: its ${which} part has no window of ${ctx} + 1 tokens for a batch of ${o.batchSize}; ` +
        `give a longer text or a smaller --context or --batch-size\n${USAGE_LINE}`,
    );
    return 2;
  }
  const optimizer = new AdamW(model, { lr: o.lr, weightDecay: o.weightDecay });
  const bar = progressBar(o.epochs * trainLoader.length, o.quiet);
  const print = (line: string) => {
    bar.clear();
    out(line);
  };
  const r: TrainResult = await withInterrupt((signal) =>
    trainModelSimple(model, trainLoader, valLoader, optimizer, {
      numEpochs: o.epochs,
      evalFreq: o.evalFreq,
      evalIter: o.evalIter,
      startContext: o.startContext,
      print,
      signal,
      onStep: ({ step, loss, tokensSeen }) => bar.draw(step + 1, loss, tokensSeen),
    })
  );
  bar.clear();
  if (o.out) {
    await model.save(o.out);
    err(`saved ${o.out} (step ${r.stepLosses.length})`);
  }
  if (o.plot && r.trainLosses.length > 0) {
    const n = r.trainLosses.length;
    const epochs = r.stopped ? r.stepLosses.length / trainLoader.length : o.epochs;
    const epochsSeen = Array.from({ length: n }, (_, i) => (n === 1 ? 0 : (i * epochs) / (n - 1)));
    await Deno.writeTextFile(o.plot, plotLosses({ ...r, epochsSeen }));
    err(`wrote ${o.plot}`);
  }
  if (r.stopped) {
    err(`interrupted after step ${r.stepLosses.length}`);
    return 130;
  }
  return 0;
}
