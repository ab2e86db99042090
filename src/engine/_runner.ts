/**
 * The runner of a model's calls: one call at a time, a workspace that fits it, the forward pass
 * recorded step after step into submissions of the profile's `submitSteps` steps, and the ids (or logits)
 * read back once at the end or once per chunk.
 *
 * @module
 */

import type { GPTConfig } from "../weights/config.ts";
import type { BackendProfile } from "./backend.ts";
import type { ModelWeights } from "../weights/model_weights.ts";
import { DeviceLostError, type GpuContext } from "../gpu/device.ts";
import { roundUp, type WeightDType } from "../gpu/weights.ts";
import type { Kernels } from "./_kernels.ts";
import type { StepShape } from "./_ops.ts";
import { OpFactory } from "./_op_factory.ts";
import { PassRecorder, type Recorder } from "./_recorder.ts";
import { Workspace, type WorkspaceSize } from "./_workspace.ts";
import { HeadScreen, SCREEN_MIN_STEPS } from "./_head_screen.ts";
import { buildForward, type ForwardOps, recordStep } from "./forward.ts";
import { encodeSampleParams, encodeStep, STEP_BYTES } from "../../kernels/mod.ts";
import type { RunOptions, StepPlan } from "./_plan.ts";
import { BufferUsage, MapMode } from "../gpu/flags.ts";

/** A plan being run: its workspace, ops, shape, step table and how each step chooses. */
interface PlanRun {
  ws: Workspace;
  ops: ForwardOps;
  B: number;
  L: number;
  plan: StepPlan[];
  table: GPUBuffer;
  next: { sample: boolean; screen: boolean };
}

/** What a runner runs: the model's parts. */
export interface RunnerParts {
  /** The device. */
  gpu: GpuContext;
  /** The configuration. */
  cfg: Required<GPTConfig>;
  /** How the weights are stored. */
  dtype: WeightDType;
  /** The backend profile. */
  profile: BackendProfile;
  /** The weights on the GPU. */
  weights: ModelWeights;
  /** The kernels the profile chose (compiled by their `prepare`). */
  kernels: Kernels;
}

/** Runs a model's calls, one at a time. */
export class Runner {
  /** The model's parts. */
  readonly parts: RunnerParts;
  /** The compiled kernels. */
  readonly kernels: Kernels;
  /** The padded vocabulary (row stride of the logits). */
  readonly vp: number;
  #ws?: Workspace;
  #ops?: ForwardOps;
  #screen: HeadScreen;
  #queue: Promise<unknown> = Promise.resolve();
  #destroyed = false;

  /**
   * Sets up the runner; nothing is allocated before the first call.
   *
   * @param parts The model's parts.
   */
  constructor(parts: RunnerParts) {
    this.parts = parts;
    const { cfg, dtype, profile, gpu } = parts;
    this.vp = roundUp(cfg.vocab_size, 64);
    this.kernels = parts.kernels;
    this.#screen = new HeadScreen({
      device: gpu.device,
      kernels: this.kernels,
      cfg,
      vp: this.vp,
      head: parts.weights.out_head,
      dtype,
      wait: (p) => this.wait(p),
    }, profile.headScreen);
  }

  /**
   * Throws when the model can no longer run.
   *
   * @param what What the caller was about to do.
   */
  check(what: string): void {
    if (this.#destroyed) throw new Error(`Cannot ${what}: the model was destroyed, create a new one`);
    const lost = this.parts.gpu.lost;
    if (lost) throw new DeviceLostError(`Cannot ${what}: the GPU device was lost (${lost}), create a new model`);
  }

  /**
   * Runs a call after every earlier call on this model has finished (calls are queued): the one
   * wrapper of every GPU call. The model must be usable now and again when the call's turn comes.
   *
   * @param what What the call does, for messages.
   * @param fn The call.
   * @returns What it returns.
   * @throws {DeviceLostError} When the device is lost (now or before its turn).
   */
  serial<T>(what: string, fn: () => Promise<T>): Promise<T> {
    this.check(what);
    const turn = () => {
      this.check(what);
      return fn();
    };
    const run = this.#queue.then(turn, turn);
    this.#queue = run.catch(() => {});
    return run;
  }

  /**
   * Waits for a GPU promise, or rejects when the device is lost first.
   *
   * @param p The promise.
   * @returns Its value.
   */
  async wait<T>(p: Promise<T>): Promise<T> {
    const lost = this.parts.gpu.device.lost.then((info) => {
      throw new DeviceLostError(
        `The GPU device was lost while the model ran (${info.reason ?? "unknown"}: ${
          info.message || "no message"
        }), create a new model`,
      );
    });
    return await Promise.race([p, lost]);
  }

  /**
   * The workspace and ops for a call of this size (the current ones when they fit).
   *
   * @param size What the call needs.
   * @returns The workspace and the ops bound to it.
   */
  workspace(size: WorkspaceSize): { ws: Workspace; ops: ForwardOps } {
    const old = this.#ws;
    if (old && this.#ops && old.fits(size)) return { ws: old, ops: this.#ops };
    if (old) {
      const z = old.size;
      size = {
        B: Math.max(size.B, z.B),
        rows: Math.max(size.rows, z.rows),
        L: Math.max(size.L, z.L),
        cap: Math.max(size.cap, z.cap),
      };
      old.destroy();
      this.#ws = this.#ops = undefined;
    }
    const made = this.createWorkspace(size);
    this.#ws = made.ws;
    this.#ops = made.ops;
    return made;
  }

  /**
   * A new workspace of its own and the ops bound to it, for a caller that keeps state in it
   * between calls (a continuous batch); the caller destroys it.
   *
   * @param size What it must hold.
   * @returns The workspace and its ops.
   */
  createWorkspace(size: WorkspaceSize): { ws: Workspace; ops: ForwardOps } {
    const { gpu, cfg, profile, weights } = this.parts;
    const ws = new Workspace(gpu.device, cfg, size, {
      xUniform: profile.xUniform,
      splitArgmax: profile.argmax === "split",
      vp: this.vp,
    });
    const ops = buildForward(new OpFactory(gpu.device, this.kernels, ws, { cfg, vp: this.vp }), weights, ws, this.vp);
    return { ws, ops };
  }

  /**
   * Gets a workspace and the kernels ready for steps of these shapes.
   *
   * @param B Batch rows.
   * @param plan The steps.
   * @param L Final row length.
   * @param options Whether the call samples, and how many steps it runs (for the head screen).
   * @returns The workspace, its ops, and whether greedy choices are screened.
   */
  async prepareSteps(
    B: number,
    plan: StepPlan[],
    L: number,
    options: { sampling: boolean; steps: number },
  ): Promise<{ ws: Workspace; ops: ForwardOps; screen: boolean }> {
    const maxT = Math.max(1, ...plan.map((p) => p.T));
    const cap = Math.max(1, ...plan.map((p) => p.pos0 + p.T));
    await this.kernels.prepareRows([B, ...plan.map((p) => B * p.T)]);
    if (options.sampling) await this.kernels.prepareSampling();
    const screen = this.#screen.wants(options.steps, options.sampling);
    if (screen) await this.#screen.build();
    const { ws, ops } = this.workspace({ B, rows: B * maxT, L, cap });
    if (screen) this.#screen.start(ws, B, ops.head);
    return { ws, ops, screen };
  }

  /**
   * Gets the head screen ready for greedy steps of `B` rows on a workspace, if the profile wants it
   * for a call of `steps` steps.
   *
   * @param ws The workspace.
   * @param ops Its ops.
   * @param B Rows of the screened steps.
   * @param steps How long the call (or request) runs.
   * @returns Whether greedy steps of `B` rows are screened.
   */
  async prepareScreen(ws: Workspace, ops: ForwardOps, B: number, steps: number): Promise<boolean> {
    if (!this.#screen.wants(steps, false)) return false;
    await this.#screen.build();
    this.#screen.start(ws, B, ops.head);
    return true;
  }

  /**
   * Records one step: the blocks, then the next token's choice (screened or not).
   *
   * @param rec Where dispatches go.
   * @param ws The workspace.
   * @param ops Its ops.
   * @param s The step's shape.
   * @param options Sample, or screen the greedy choice.
   * @param range Only these blocks, and the next token's choice only with the last block.
   */
  recordStep(
    rec: Recorder,
    ws: Workspace,
    ops: ForwardOps,
    s: StepShape,
    options: { sample: boolean; screen: boolean },
    range: { from: number; to: number } = { from: 0, to: ops.blocks.length },
  ): void {
    const screen = options.screen && !options.sample
      ? (r: Recorder, sh: StepShape) => this.#screen.record(r, ws, sh, ops.head)
      : undefined;
    recordStep(rec, ops, s, { screen, argmax: !options.sample, sample: options.sample }, range);
  }

  /**
   * Records one step into `enc`; where the profile splits steps into parts of `submitBlocks`
   * blocks (CPU adapters), submits each part but the last and lets the event loop run between them.
   *
   * @param enc The encoder.
   * @param blocks The model's block count.
   * @param record Records the blocks of a range (and, with the last block, the next token's choice).
   * @param blocksPerPart Blocks per submitted part (default the profile's; 0: the whole step).
   * @returns The encoder that holds the rest of the step.
   */
  async encodeStep(
    enc: GPUCommandEncoder,
    blocks: number,
    record: (rec: Recorder, range: { from: number; to: number }) => void,
    blocksPerPart: number = this.parts.profile.submitBlocks,
  ): Promise<GPUCommandEncoder> {
    const d = this.parts.gpu.device;
    const per = blocksPerPart || blocks;
    for (let from = 0; from < blocks; from += per) {
      const pass = enc.beginComputePass({ label: "step" });
      const range = { from, to: Math.min(blocks, from + per) };
      record(new PassRecorder(pass), range);
      pass.end();
      if (range.to < blocks) {
        d.queue.submit([enc.finish()]);
        enc = d.createCommandEncoder({ label: "generate" });
        await new Promise((r) => setTimeout(r, 0));
        this.check("generate");
      }
    }
    return enc;
  }

  /**
   * Runs a plan of steps on token rows and returns the rows with each step's choice written after
   * its window. Steps go to the GPU in submissions of `submitSteps`, with one readback at the
   * end (and one after each step that `readAfter` names).
   *
   * @param flat The prompt rows, `[B, T0]`.
   * @param B Batch rows.
   * @param L Final row length (prompt plus one token per step).
   * @param plan The steps.
   * @param options Sampling and readbacks.
   * @returns The token rows, `[B, L]`.
   */
  runPlan(flat: Uint32Array, B: number, L: number, plan: StepPlan[], options: RunOptions = {}): Promise<Uint32Array> {
    return this.serial("generate", async () => {
      const maxT = Math.max(1, ...plan.map((p) => p.T));
      if (B * maxT > 65535) {
        throw new RangeError(
          `Cannot generate: ${B} rows x ${maxT} tokens is over 65535 rows per step, use a smaller batch`,
        );
      }
      const sampling = Boolean(options.sampling);
      const { ws, ops, screen } = await this.prepareSteps(B, plan, L, { sampling, steps: plan.length });
      const table = this.#upload(ws, flat, B, plan, options.sampling);
      try {
        return await this.#runSteps({ ws, ops, B, L, plan, table, next: { sample: sampling, screen } }, options);
      } finally {
        table.destroy();
      }
    });
  }

  /** Writes the prompt rows, the plan's step table and the sampler's parameters; returns the table. */
  #upload(ws: Workspace, flat: Uint32Array, B: number, plan: StepPlan[], sm: RunOptions["sampling"]): GPUBuffer {
    const d = this.parts.gpu.device;
    const T0 = flat.length / B;
    const WL = ws.size.L;
    const init = new Uint32Array(B * WL);
    for (let b = 0; b < B; b++) init.set(flat.subarray(b * T0, (b + 1) * T0), b * WL);
    d.queue.writeBuffer(ws.tokens, 0, init);
    const steps = new ArrayBuffer(Math.max(1, plan.length) * STEP_BYTES);
    plan.forEach((p, i) =>
      encodeStep({ batch: B, T: p.T, start: p.start, pos0: p.pos0, L: WL, index: i }, steps, i * STEP_BYTES)
    );
    const table = d.createBuffer({
      label: "step_table",
      size: steps.byteLength,
      usage: BufferUsage.COPY_SRC | BufferUsage.COPY_DST,
    });
    d.queue.writeBuffer(table, 0, steps);
    if (sm) {
      d.queue.writeBuffer(
        ws.sampleParams,
        0,
        encodeSampleParams({ V: this.parts.cfg.vocab_size, ldl: this.vp, ...sm }),
      );
    }
    return table;
  }

  /** Records and submits the plan's steps, reading back where asked; the token rows, `[B, L]`. */
  async #runSteps(c: PlanRun, options: RunOptions): Promise<Uint32Array> {
    const d = this.parts.gpu.device;
    const { ws, B, L, plan } = c;
    const WL = ws.size.L;
    const res = new Uint32Array(B * L);
    const read = async (enc: GPUCommandEncoder) => {
      const [out] = await this.readback(enc, [[ws.tokens, B * WL * 4]]);
      const rows = new Uint32Array(out);
      for (let b = 0; b < B; b++) res.set(rows.subarray(b * WL, b * WL + L), b * L);
      // destroyed while the GPU ran: what came back is not the model's answer
      this.check("generate");
    };
    let enc = d.createCommandEncoder({ label: "generate" });
    for (let i = 0; i < plan.length; i++) {
      enc.copyBufferToBuffer(c.table, i * STEP_BYTES, ws.step, 0, STEP_BYTES);
      const s = { B, T: plan[i].T };
      enc = await this.encodeStep(
        enc,
        c.ops.blocks.length,
        (rec, range) => this.recordStep(rec, ws, c.ops, s, c.next, range),
      );
      if (i + 1 === plan.length) break;
      if (options.readAfter?.(i + 1)) {
        await read(enc);
        enc = d.createCommandEncoder({ label: "generate" });
        if (options.onChunk && !(await options.onChunk(res, i + 1))) return res;
      } else if ((i + 1) % this.parts.profile.submitSteps === 0) {
        enc = await this.#submit(enc);
      }
    }
    // the step counts can only turn screening off for a call of SCREEN_MIN_STEPS or more
    const stats = c.next.screen && plan.length >= SCREEN_MIN_STEPS ? this.#screen.copyStats(ws, enc) : undefined;
    await read(enc);
    if (stats) await this.#screen.checkStats(stats);
    if (options.onChunk) await options.onChunk(res, plan.length);
    return res;
  }

  /** Submits what is recorded and starts a new encoder; lets the event loop run where submissions block it. */
  async #submit(enc: GPUCommandEncoder): Promise<GPUCommandEncoder> {
    const d = this.parts.gpu.device;
    d.queue.submit([enc.finish()]);
    // where a submission runs on this thread (lavapipe), let timers and I/O run between steps
    if (this.parts.profile.submitSteps === 1) await new Promise((r) => setTimeout(r, 0));
    this.check("generate");
    return d.createCommandEncoder({ label: "generate" });
  }

  /**
   * Submits an encoder with copies of buffers into mappable ones, and reads them: the one
   * readback every call uses.
   *
   * @param enc The encoder to finish.
   * @param what Each buffer, and how many bytes from its start.
   * @returns The bytes of each.
   */
  async readback(enc: GPUCommandEncoder, what: [GPUBuffer, number][]): Promise<ArrayBuffer[]> {
    const d = this.parts.gpu.device;
    const staging = what.map(([src, bytes]) => {
      const b = d.createBuffer({
        label: "readback",
        size: roundUp(bytes, 4),
        usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST,
      });
      enc.copyBufferToBuffer(src, 0, b, 0, roundUp(bytes, 4));
      return b;
    });
    try {
      d.queue.submit([enc.finish()]);
      await Promise.all(staging.map((b) => this.wait(b.mapAsync(MapMode.READ))));
      return staging.map((b, i) => b.getMappedRange().slice(0, what[i][1]));
    } finally {
      for (const b of staging) b.destroy();
    }
  }

  /** Frees the workspace and the head screen; later calls throw. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#screen.destroy();
    this.#ws?.destroy();
    this.#ws = this.#ops = undefined;
  }
}
