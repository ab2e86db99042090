/**
 * `torch.optim.AdamW` on the GPU, and `clip_grad_norm_` (the book's appendix D).
 *
 * @module
 */

import type { GPTModel } from "../model/model.ts";
import { loadOptimizer, saveOptimizer, trainingOf } from "../model/_trainable.ts";
import { runnerOf } from "../engine/_runner_of.ts";

/** Options of {@linkcode AdamW}, with `torch.optim.AdamW`'s defaults. */
export interface AdamWOptions {
  /** Learning rate (default 1e-3). */
  lr?: number;
  /** Coefficients of the running averages of the gradient and its square (default `[0.9, 0.999]`). */
  betas?: [number, number];
  /** Added to the denominator (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay, applied to every parameter as `model.parameters()` gives them (default 0.01). */
  weightDecay?: number;
}

/**
 * `torch.optim.AdamW(model.parameters(), lr, betas, eps, weight_decay)`: PyTorch's update, step for
 * step, on every parameter of a trainable model, on the GPU.
 *
 * @example
 * ```ts ignore
 * const optimizer = new AdamW(model, { lr: 4e-4, weightDecay: 0.1 });
 * optimizer.zeroGrad();
 * await backward(model, inputs, targets);
 * optimizer.step();
 * ```
 */
export class AdamW {
  /** The learning rate; may be changed between steps (a schedule). */
  lr: number;
  /** The running averages' coefficients. */
  betas: readonly [number, number];
  /** The denominator's epsilon. */
  eps: number;
  /** The weight decay. */
  weightDecay: number;
  #model: GPTModel;

  /**
   * Makes the optimizer of a model's parameters.
   *
   * @param model A model made with `trainable: true`.
   * @param options Learning rate, betas, epsilon, weight decay.
   * @throws {TypeError} When the model is not trainable.
   * @throws {RangeError} On a negative or non-finite setting.
   */
  constructor(model: GPTModel, options: AdamWOptions = {}) {
    const t = trainingOf(model, "make an optimizer");
    for (const k of Object.keys(options)) {
      if (!["lr", "betas", "eps", "weightDecay"].includes(k)) {
        throw new TypeError(`Cannot make the optimizer: unknown option '${k}'`);
      }
    }
    const { lr = 1e-3, betas = [0.9, 0.999], eps = 1e-8, weightDecay = 1e-2 } = options;
    const check = (name: string, v: number, max = Infinity) => {
      if (!Number.isFinite(v) || v < 0 || v >= max) {
        throw new RangeError(
          `Cannot make the optimizer: ${name} '${v}' must be a number from 0${max < Infinity ? ` below ${max}` : ""}`,
        );
      }
    };
    check("lr", lr);
    check("betas[0]", betas[0], 1);
    check("betas[1]", betas[1], 1);
    check("eps", eps);
    check("weightDecay", weightDecay);
    if (t.optimizer) throw new Error("Cannot make the optimizer: the model already has one; reuse it");
    t.optimizer = this;
    this.lr = lr;
    this.betas = [betas[0], betas[1]];
    this.eps = eps;
    this.weightDecay = weightDecay;
    this.#model = model;
  }

  get #device(): GPUDevice {
    return runnerOf(this.#model).parts.gpu.device;
  }

  /** Sets every gradient to zero (`optimizer.zero_grad()`). */
  zeroGrad(): void {
    trainingOf(this.#model).state.zeroGrad();
  }

  /**
   * Writes the optimizer's state (AdamW's running averages, step count and settings) as safetensors,
   * atomically: with `model.save` it lets training resume exactly (`optimizer.state_dict()`).
   *
   * @param path The file, e.g. `optimizer.safetensors`.
   */
  async save(path: string): Promise<void> {
    const t = trainingOf(this.#model);
    const settings = {
      step: t.steps,
      lr: this.lr,
      betas: [...this.betas] as [number, number],
      eps: this.eps,
      weightDecay: this.weightDecay,
    };
    await runnerOf(this.#model).serial(
      "save the optimizer",
      () => saveOptimizer(this.#device, t.state, settings, path),
    );
  }

  /**
   * Reads a state {@linkcode AdamW.save} wrote (`optimizer.load_state_dict(...)`): the running
   * averages, the step count, and the settings, which replace this optimizer's.
   *
   * @param path The file.
   * @throws {Error} When the file is not the state of an AdamW over this model's parameters.
   */
  async load(path: string): Promise<void> {
    const t = trainingOf(this.#model);
    const s = await runnerOf(this.#model).serial(
      "load the optimizer",
      () => loadOptimizer(this.#device, t.state, path),
    );
    t.steps = s.step;
    this.lr = s.lr;
    this.betas = [s.betas[0], s.betas[1]];
    this.eps = s.eps;
    this.weightDecay = s.weightDecay;
  }

  /**
   * Updates every parameter from its gradient (`optimizer.step()`); generation then uses the new
   * values. The work is queued on the GPU; later calls wait for it.
   */
  step(): void {
    const t = trainingOf(this.#model);
    runnerOf(this.#model).check("step the optimizer");
    t.steps++;
    t.state.adamStep(t.steps, {
      lr: this.lr,
      beta1: this.betas[0],
      beta2: this.betas[1],
      eps: this.eps,
      weightDecay: this.weightDecay,
    }, t.weights);
  }
}

/**
 * Scales the gradients so that their global L2 norm is at most `maxNorm`
 * (`torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)`).
 *
 * @param model A trainable model.
 * @param maxNorm The largest norm allowed, above 0.
 * @returns The norm before clipping.
 * @throws {RangeError} When `maxNorm` is not a positive number.
 */
export async function clipGradNorm(model: GPTModel, maxNorm: number): Promise<number> {
  const t = trainingOf(model, "clip the gradients");
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm)) {
    throw new RangeError(`Cannot clip the gradients: maxNorm '${maxNorm}' is not a positive number`);
  }
  return await runnerOf(model).serial("clip the gradients", () => t.state.clipGradNorm(maxNorm));
}
