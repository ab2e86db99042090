/**
 * Loading the model a command asks for (the command line's and the served one): a hub model, a
 * weights file, or the seeded untrained one, with progress lines.
 *
 * @module
 */

import { GPT_CONFIG_124M } from "../weights/config.ts";
import { GPTModel } from "../model/model.ts";
import type { WeightDType } from "../gpu/weights.ts";
import type { BackendOptions } from "../engine/backend.ts";
import { downloadProgress, loadProgress } from "./_progress.ts";

/** Where the model comes from. */
export interface ModelSource {
  /** A weights file or directory. */
  weights?: string;
  /** A hub model's name. */
  model?: string;
  /** The hub revision. */
  revision?: string;
  /** Only the hub cache. */
  offline?: boolean;
  /** How weights are stored. */
  dtype: WeightDType;
  /** Seed of the untrained model. */
  seed: number;
  /** No progress on stderr. */
  quiet: boolean;
}

/**
 * Loads the model a command line asks for: a hub model, a weights file, or the seeded untrained one.
 *
 * @param o Where it comes from and how to store it.
 * @param err Where progress goes.
 * @param backend Backend choices (default: whole steps per submission; undefined: the adapter's defaults).
 * @returns The model.
 */
export async function loadModel(
  o: ModelSource,
  err: (s: string) => void,
  // nothing else runs in this process: whole batches of steps per submission, for speed
  backend: BackendOptions | undefined = { submitSteps: 32, submitBlocks: 0 },
): Promise<GPTModel> {
  const onProgress = o.quiet ? undefined : loadProgress(err);
  if (o.model) {
    return await GPTModel.fromPretrained(o.model, {
      dtype: o.dtype,
      backend,
      revision: o.revision,
      offline: o.offline || undefined,
      onDownload: o.quiet ? undefined : downloadProgress(err),
      onProgress,
    });
  }
  if (o.weights) return await GPTModel.load(o.weights, { dtype: o.dtype, backend, onProgress });
  return await GPTModel.create(GPT_CONFIG_124M, { seed: o.seed, dtype: o.dtype, backend });
}
