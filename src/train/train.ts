/**
 * Chapter 5's training loop: `calc_loss_batch`, `calc_loss_loader`, `evaluate_model`,
 * `generate_and_print_sample` and `train_model_simple`, with the book's names in camelCase and
 * its printed lines.
 *
 * @module
 */

import type { GPTModel } from "../model/model.ts";
import { generateTextSimple } from "../model/generate.ts";
import { trainingOf } from "../model/_trainable.ts";
import { runnerOf } from "../engine/_runner_of.ts";
import { checkBatch } from "../engine/_batch.ts";
import { decode, encode } from "../text/tokenizer.ts";
import type { AdamW } from "./optimizer.ts";
import type { Batch, DataLoader } from "./dataloader.ts";

async function batchLoss(model: GPTModel, inputs: number[][], targets: number[][], backward: boolean): Promise<number> {
  const what = backward ? "compute the gradients" : "compute the loss";
  const t = trainingOf(model, what);
  const V = model.config.vocab_size;
  const x = checkBatch(inputs, V, what);
  const y = checkBatch(targets, V, what);
  if (x.B !== y.B || x.T !== y.T) {
    throw new TypeError(`Cannot ${what}: inputs are [${x.B}, ${x.T}] but targets are [${y.B}, ${y.T}]`);
  }
  if (x.T > model.config.context_length) {
    throw new RangeError(`Cannot ${what}: ${x.T} tokens exceed the context length ${model.config.context_length}`);
  }
  const r = await runnerOf(model).serial(what, () => t.state.loss(inputs, targets, backward));
  return r.loss;
}

/**
 * The book's `calc_loss_batch` under `torch.no_grad()`: the mean cross-entropy of a batch.
 *
 * @param inputBatch Token ids, `[batch, T]`.
 * @param targetBatch The next ids, same shape.
 * @param model A trainable model.
 * @returns The loss.
 */
export async function calcLossBatch(inputBatch: number[][], targetBatch: number[][], model: GPTModel): Promise<number> {
  return await batchLoss(model, inputBatch, targetBatch, false);
}

/**
 * `calc_loss_batch` then `loss.backward()`: the batch's mean cross-entropy, its gradients added
 * to the parameters' (call the optimizer's `zeroGrad` first; gradients of several calls add up).
 *
 * @param model A trainable model.
 * @param inputBatch Token ids, `[batch, T]`.
 * @param targetBatch The next ids, same shape.
 * @returns The loss.
 */
export async function backward(model: GPTModel, inputBatch: number[][], targetBatch: number[][]): Promise<number> {
  return await batchLoss(model, inputBatch, targetBatch, true);
}

/**
 * The book's `calc_loss_loader`: the mean of the first `numBatches` batches' losses (all by default;
 * NaN for an empty loader).
 *
 * @param dataLoader The batches.
 * @param model A trainable model.
 * @param numBatches How many batches at most.
 * @returns The mean loss.
 */
export async function calcLossLoader(dataLoader: DataLoader, model: GPTModel, numBatches?: number): Promise<number> {
  if (dataLoader.length === 0) return NaN;
  const n = numBatches === undefined ? dataLoader.length : Math.min(numBatches, dataLoader.length);
  let total = 0;
  let i = 0;
  for (const [x, y] of dataLoader) {
    if (i++ >= n) break;
    total += await calcLossBatch(x, y, model);
  }
  return total / n;
}

/**
 * The book's `evaluate_model`: the training and validation losses over `evalIter` batches each.
 *
 * @param model A trainable model.
 * @param trainLoader The training batches.
 * @param valLoader The validation batches.
 * @param evalIter Batches of each.
 * @returns Both losses.
 */
export async function evaluateModel(
  model: GPTModel,
  trainLoader: DataLoader,
  valLoader: DataLoader,
  evalIter: number,
): Promise<{ trainLoss: number; valLoss: number }> {
  const trainLoss = await calcLossLoader(trainLoader, model, evalIter);
  const valLoss = await calcLossLoader(valLoader, model, evalIter);
  return { trainLoss, valLoss };
}

/**
 * The book's `generate_and_print_sample`: 50 greedy tokens after `startContext`, printed on one
 * line (newlines as spaces).
 *
 * @param model The model.
 * @param startContext The prompt.
 * @param options `maxNewTokens` (default 50); `print` (default `console.log`).
 * @returns The ids and the line.
 */
export async function generateAndPrintSample(
  model: GPTModel,
  startContext: string,
  options: { maxNewTokens?: number; print?: (line: string) => void } = {},
): Promise<{ ids: number[]; text: string }> {
  const contextSize = model.config.context_length;
  const ids = (await generateTextSimple(model, [encode(startContext)], options.maxNewTokens ?? 50, contextSize))[0];
  const text = decode(ids).replaceAll("\n", " ");
  (options.print ?? console.log)(text);
  return { ids, text };
}

/** Options of {@linkcode trainModelSimple}. */
export interface TrainOptions {
  /** Passes over the training batches. */
  numEpochs: number;
  /** Evaluate every this many steps (from step 0). */
  evalFreq: number;
  /** Batches per evaluation of each loader. */
  evalIter: number;
  /** The prompt of the sample printed after each epoch. */
  startContext: string;
  /** Tokens of each sample (default 50, the book's). */
  maxNewTokens?: number;
  /** Called with each printed line (default `console.log`). */
  print?: (line: string) => void;
  /** Called after every optimizer step. */
  onStep?: (s: { step: number; epoch: number; loss: number; tokensSeen: number }) => void | Promise<void>;
  /** Stops at the next step boundary when aborted (the result says `stopped`). */
  signal?: AbortSignal;
}

/** What {@linkcode trainModelSimple} returns. */
export interface TrainResult {
  /** Evaluated training losses. */
  trainLosses: number[];
  /** Evaluated validation losses. */
  valLosses: number[];
  /** Tokens seen at each evaluation. */
  tokensSeen: number[];
  /** Every step's training loss. */
  stepLosses: number[];
  /** The sample printed after each epoch. */
  samples: string[];
  /** True when `signal` stopped training early. */
  stopped: boolean;
}

/** Thrown when the loss becomes NaN or infinite. */
export class TrainingDivergedError extends Error {
  /**
   * Creates the error.
   *
   * @param message What happened, naming the step.
   */
  constructor(message: string) {
    super(message);
    this.name = "TrainingDivergedError";
  }
}

/**
 * The book's `train_model_simple`: for each epoch, for each training batch, `zero_grad`, the loss
 * and its gradients, `step`; every `evalFreq` steps `evaluate_model` and the line
 * `Ep 1 (Step 000000): Train loss 9.781, Val loss 9.933`; after each epoch a sample.
 *
 * @param model A trainable model.
 * @param trainLoader The training batches.
 * @param valLoader The validation batches.
 * @param optimizer The optimizer.
 * @param options Epochs, evaluation, the sample's prompt, callbacks, a signal.
 * @returns The losses and tokens seen at each evaluation, and every step's loss.
 * @throws {TrainingDivergedError} When a step's loss is not finite.
 * @throws {RangeError} When `numEpochs`, `evalFreq` or `evalIter` is not a count.
 */
export async function trainModelSimple(
  model: GPTModel,
  trainLoader: DataLoader,
  valLoader: DataLoader,
  optimizer: AdamW,
  options: TrainOptions,
): Promise<TrainResult> {
  const { numEpochs, evalFreq, evalIter, startContext, signal } = options;
  for (
    const [name, v, min] of [["numEpochs", numEpochs, 0], ["evalFreq", evalFreq, 1], ["evalIter", evalIter, 1]] as const
  ) {
    if (!Number.isSafeInteger(v) || v < min) {
      throw new RangeError(`Cannot train: ${name} '${v}' must be an integer of at least ${min}`);
    }
  }
  const print = options.print ?? console.log;
  const out: TrainResult = {
    trainLosses: [],
    valLosses: [],
    tokensSeen: [],
    stepLosses: [],
    samples: [],
    stopped: false,
  };
  let tokensSeen = 0, globalStep = -1;
  for (let epoch = 0; epoch < numEpochs; epoch++) {
    for (const [inputBatch, targetBatch] of trainLoader as Iterable<Batch>) {
      if (signal?.aborted) return { ...out, stopped: true };
      optimizer.zeroGrad();
      const loss = await backward(model, inputBatch, targetBatch);
      if (!Number.isFinite(loss)) {
        throw new TrainingDivergedError(
          `Training stopped at step ${globalStep + 1} (epoch ${
            epoch + 1
          }): the loss is ${loss}; lower the learning rate`,
        );
      }
      optimizer.step();
      out.stepLosses.push(loss);
      tokensSeen += inputBatch.length * inputBatch[0].length;
      globalStep++;
      await options.onStep?.({ step: globalStep, epoch: epoch + 1, loss, tokensSeen });
      if (globalStep % evalFreq === 0) {
        const { trainLoss, valLoss } = await evaluateModel(model, trainLoader, valLoader, evalIter);
        out.trainLosses.push(trainLoss);
        out.valLosses.push(valLoss);
        out.tokensSeen.push(tokensSeen);
        print(
          `Ep ${epoch + 1} (Step ${String(globalStep).padStart(6, "0")}): ` +
            `Train loss ${trainLoss.toFixed(3)}, Val loss ${valLoss.toFixed(3)}`,
        );
      }
    }
    const sample = await generateAndPrintSample(model, startContext, { maxNewTokens: options.maxNewTokens, print });
    out.samples.push(sample.text);
  }
  return out;
}
