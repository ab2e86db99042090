/**
 * Ragged steps on a workspace of their own: each batch row of a step has its own slot (cache and
 * token row), positions and sampling settings, so requests of different lengths share a step.
 * A run is a few such steps (new rows' prefills, then decoding steps) in one submission with one
 * readback. The continuous batcher (`batcher.ts`) plans them.
 *
 * @module
 */

import type { Runner } from "./_runner.ts";
import type { Workspace } from "./_workspace.ts";
import type { ForwardOps } from "./forward.ts";
import type { Op } from "./_ops.ts";
import { OpFactory } from "./_op_factory.ts";
import { recordStep } from "./forward.ts";
import {
  encodeRow,
  encodeSampleParams,
  encodeStep,
  LOGPROB_WORDS,
  LOGPROBS,
  MAX_RAGGED_ROWS,
  STEP_UNIFORM_BYTES,
  TOP_LOGPROBS,
} from "../../kernels/mod.ts";
import { BufferUsage } from "../gpu/flags.ts";

/** One batch row of a ragged step. */
export interface RaggedRow {
  /** Its cache and token row. */
  slot: number;
  /** Index in the token row of the first token the step reads (also its position). */
  start: number;
  /** Steps its request has run before this one (seeds its draws). */
  index: number;
  /** Sampling: temperature (0: greedy), top-k (0: off), top-p (1: off), seed, and the row of its request. */
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
  draw: number;
}

/** One ragged step: every row runs `T` tokens. */
export interface RaggedStep {
  /** Tokens per row. */
  T: number;
  /** The rows, at most `MAX_RAGGED_ROWS`. */
  rows: RaggedRow[];
}

/** The log-probabilities of one chosen token. */
export interface TokenLogprobs {
  /** The chosen token's log-probability. */
  logprob: number;
  /** The most likely tokens, best first, with their log-probabilities. */
  top: { id: number; logprob: number }[];
}

/** What a run read back. */
export interface RaggedResult {
  /** The token rows, `[slots, L]`. */
  tokens: Uint32Array;
  /** For each step and row, its choice's log-probabilities (when asked for). */
  logprobs?: TokenLogprobs[][];
}

/** The workspace of a continuous batch and the runs on it. */
export class RaggedEngine {
  /** Token row stride (the context, rounded up to 64). */
  readonly L: number;
  /** Slots (rows of the cache). */
  readonly slots: number;
  #runner: Runner;
  #ws: Workspace;
  #ops: ForwardOps;
  #logprobs: Op;
  #lpOut: GPUBuffer;
  #maxSteps: number;

  /**
   * Allocates the workspace.
   *
   * @param runner The model's runner.
   * @param size Slots, the most token rows one step runs, and the most steps one run holds.
   */
  constructor(runner: Runner, size: { slots: number; rows: number; steps: number }) {
    this.#runner = runner;
    const cfg = runner.parts.cfg;
    this.slots = size.slots;
    this.#maxSteps = size.steps;
    const ctx = cfg.context_length;
    const made = runner.createWorkspace({ B: size.slots, rows: size.rows, L: ctx, cap: ctx });
    this.#ws = made.ws;
    this.L = made.ws.size.L;
    this.#ops = made.ops;
    const d = runner.parts.gpu.device;
    this.#lpOut = this.#ws.adopt(d.createBuffer({
      label: "logprobs",
      size: size.steps * MAX_RAGGED_ROWS * LOGPROB_WORDS * 4,
      usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC,
    }));
    const make = new OpFactory(d, runner.kernels, this.#ws, { cfg, vp: runner.vp });
    this.#logprobs = make.logprobs(this.#ws.logits, this.#ws.tokens, this.#lpOut);
    // each ragged row carries its own settings; the parameters give only the sizes
    d.queue.writeBuffer(this.#ws.sampleParams, 0, encodeSampleParams({ V: cfg.vocab_size, ldl: runner.vp, topP: 0 }));
  }

  /**
   * Writes a prompt into a slot's token row.
   *
   * @param slot The slot.
   * @param ids The prompt.
   */
  writePrompt(slot: number, ids: Uint32Array<ArrayBuffer>): void {
    this.#runner.parts.gpu.device.queue.writeBuffer(this.#ws.tokens, slot * this.#ws.size.L * 4, ids);
  }

  /**
   * Runs steps in one submission (in parts on CPU adapters) and reads the token rows back.
   *
   * @param steps The steps, at most the engine's `steps`.
   * @param options Whether to compute log-probabilities; how many steps the requests may still run
   * (greedy decoding steps screen the head, as `generate` does, when that is long enough).
   * @returns The token rows and log-probabilities.
   */
  run(steps: RaggedStep[], options: { logprobs: boolean; steps?: number }): Promise<RaggedResult> {
    const runner = this.#runner;
    if (steps.length > this.#maxSteps) throw new RangeError(`A ragged run holds at most ${this.#maxSteps} steps`);
    return runner.serial("generate", async () => {
      const sample = steps.some((s) => s.rows.some((r) => r.temperature > 0));
      // the blocks run B * T rows, the head B
      await runner.kernels.prepareRows(steps.flatMap((s) => [s.rows.length, s.rows.length * s.T]));
      if (sample) await runner.kernels.prepareSampling();
      if (options.logprobs) await runner.kernels.prepareAll([LOGPROBS]);
      const d = runner.parts.gpu.device;
      const ws = this.#ws;
      const ops = this.#ops;
      // greedy decoding steps (one token a row) screen the head, all with the same rows
      const decodeB = steps.find((s) => s.T === 1)?.rows.length ?? 0;
      const screened = !sample && !options.logprobs && decodeB > 0 &&
        await runner.prepareScreen(ws, ops, decodeB, options.steps ?? 0);
      const table = d.createBuffer({
        label: "ragged_steps",
        size: steps.length * STEP_UNIFORM_BYTES,
        usage: BufferUsage.COPY_SRC | BufferUsage.COPY_DST,
      });
      try {
        d.queue.writeBuffer(table, 0, this.#table(steps));
        let enc = d.createCommandEncoder({ label: "ragged" });
        // parts of one block on CPU adapters: a batch's step is several times a row's
        const per = runner.parts.profile.submitBlocks === 0 ? 0 : 1;
        for (let i = 0; i < steps.length; i++) {
          const s = { B: steps[i].rows.length, T: steps[i].T };
          enc.copyBufferToBuffer(table, i * STEP_UNIFORM_BYTES, ws.step, 0, STEP_UNIFORM_BYTES);
          // greedy rows take the argmax; the sampler overwrites the rows that sample
          const next = { argmax: true, sample, logprobs: options.logprobs ? this.#logprobs : undefined };
          const screen = screened && s.T === 1 && s.B === decodeB;
          enc = await runner.encodeStep(
            enc,
            ops.blocks.length,
            (rec, range) =>
              screen
                ? runner.recordStep(rec, ws, ops, s, { sample: false, screen: true }, range)
                : recordStep(rec, ops, s, next, range),
            per,
          );
        }
        const tokenBytes = this.slots * ws.size.L * 4;
        const lpBytes = steps.length * MAX_RAGGED_ROWS * LOGPROB_WORDS * 4;
        const [tok, lp] = await runner.readback(enc, [
          [ws.tokens, tokenBytes],
          ...(options.logprobs ? [[this.#lpOut, lpBytes] as [GPUBuffer, number]] : []),
        ]);
        runner.check("generate");
        return {
          tokens: new Uint32Array(tok),
          logprobs: lp ? this.#unpack(steps, lp) : undefined,
        };
      } finally {
        table.destroy();
      }
    });
  }

  /** Frees the workspace. */
  destroy(): void {
    this.#ws.destroy();
  }

  #table(steps: RaggedStep[]): ArrayBuffer {
    const buf = new ArrayBuffer(steps.length * STEP_UNIFORM_BYTES);
    steps.forEach((s, i) => {
      const B = s.rows.length;
      if (B < 1 || B > MAX_RAGGED_ROWS) throw new RangeError(`A ragged step holds 1 to ${MAX_RAGGED_ROWS} rows`);
      const o = i * STEP_UNIFORM_BYTES;
      encodeStep({ batch: B, T: s.T, L: this.#ws.size.L, index: i, ragged: true }, buf, o);
      // a ragged row's first token sits at its own position in its token row
      s.rows.forEach((r, b) => encodeRow({ ...r, pos0: r.start }, buf, o, b));
    });
    return buf;
  }

  #unpack(steps: RaggedStep[], raw: ArrayBuffer): TokenLogprobs[][] {
    const u = new Uint32Array(raw);
    const f = new Float32Array(raw);
    return steps.map((s, i) =>
      s.rows.map((_, b) => {
        const o = (i * MAX_RAGGED_ROWS + b) * LOGPROB_WORDS;
        const lse = f[o];
        const top = Array.from({ length: TOP_LOGPROBS }, (_, k) => ({ id: u[o + 2 + k], logprob: f[o + 7 + k] - lse }));
        return { logprob: f[o + 1] - lse, top };
      })
    );
  }
}
