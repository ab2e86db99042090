/**
 * Which runner belongs to which model: the model API keeps its runner out of its public shape,
 * and the library's own modules find it here.
 *
 * @module
 */

import type { Runner } from "./_runner.ts";

const runners = new WeakMap<object, Runner>();

/**
 * Ties a runner to its model, for the library's own modules.
 *
 * @param model The model.
 * @param runner Its runner.
 */
export function attachRunner(model: object, runner: Runner): void {
  runners.set(model, runner);
}

/**
 * The runner of a model.
 *
 * @param model The model.
 * @returns Its runner.
 * @throws {TypeError} When `model` is not a model.
 */
export function runnerOf(model: object): Runner {
  const r = runners.get(model);
  if (!r) {
    throw new TypeError(`Expected a GPTModel, got ${String(model)}; make one with GPTModel.create or GPTModel.load`);
  }
  return r;
}
