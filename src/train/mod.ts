/**
 * Pretraining, chapter 5 of the book: the data loader, AdamW, the training loop and its plot.
 *
 * @module
 */

export { type Batch, createDataloaderV1, DataLoader, type DataloaderOptions, GPTDatasetV1 } from "./dataloader.ts";
export { AdamW, type AdamWOptions, clipGradNorm } from "./optimizer.ts";
export {
  backward,
  calcLossBatch,
  calcLossLoader,
  evaluateModel,
  generateAndPrintSample,
  TrainingDivergedError,
  trainModelSimple,
  type TrainOptions,
  type TrainResult,
} from "./train.ts";
export { type LossPlot, plotLosses } from "./plot.ts";
export { defaultGenerator, TorchGenerator } from "../weights/torch_random.ts";
