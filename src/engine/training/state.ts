/**
 * A model's training state: its parameters, the compiled kernels, and the recorded programs that
 * compute a batch's loss (with or without gradients), step AdamW, clip gradients, and copy the
 * parameters into the weights that generation reads.
 *
 * @module
 */

import type { GPTConfig } from "../../weights/config.ts";
import type { ModelWeights } from "../../weights/model_weights.ts";
import { BufferUsage, MapMode } from "../../gpu/flags.ts";
import { Activations } from "./_activations.ts";
import { DropoutSites, TrainOps } from "./_ops.ts";
import { Program, type TrainPipelines, trainPipelines } from "./_program.ts";
import type { Param, TrainParams } from "./params.ts";
import { recordBackward, recordForward, recordLoss } from "./step.ts";

/** AdamW's hyperparameters, as `torch.optim.AdamW` takes them. */
export interface AdamWSettings {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

interface LossProgram {
  prog: Program;
  embedSlots: number[];
  dropout?: DropoutSites;
}

/** The GPU side of training one model. */
export class TrainState {
  /** The parameters. */
  readonly params: TrainParams;
  #device: GPUDevice;
  #pipes: TrainPipelines;
  #act?: Activations;
  #programs = new Map<string, LossProgram>();
  #moments?: { m: GPUBuffer; v: GPUBuffer }[];
  #adam?: { prog: Program; slots: number[] };
  #clip?: { prog: Program; out: GPUBuffer; staging: GPUBuffer };
  #sync?: Program;
  #wait: <T>(p: Promise<T>) => Promise<T>;
  #seed: number;
  #dropped = 0;

  private constructor(
    device: GPUDevice,
    params: TrainParams,
    pipes: TrainPipelines,
    options: { wait: <T>(p: Promise<T>) => Promise<T>; seed: number },
  ) {
    this.#device = device;
    this.params = params;
    this.#pipes = pipes;
    this.#wait = options.wait;
    this.#seed = options.seed;
  }

  /**
   * Compiles the training kernels for a model's parameters.
   *
   * @param device The device.
   * @param params The parameters (already written).
   * @param options The runner's GPU wait; the seed of dropout's masks.
   * @returns The state.
   */
  static async create(
    device: GPUDevice,
    params: TrainParams,
    options: { wait: <T>(p: Promise<T>) => Promise<T>; seed: number },
  ): Promise<TrainState> {
    return new TrainState(device, params, await trainPipelines(device), options);
  }

  /**
   * How many training passes have drawn dropout masks: the next one's masks come from it. Setting
   * it back redraws a pass's masks (for checks).
   */
  get dropoutStep(): number {
    return this.#dropped;
  }
  set dropoutStep(n: number) {
    this.#dropped = n;
  }

  get #cfg(): Required<GPTConfig> {
    return this.params.cfg;
  }

  /**
   * The activations for `batch x T`, reallocated when a larger batch or another `T` comes; refused in
   * one sentence when the GPU cannot hold them.
   */
  async #activations(batch: number, T: number): Promise<Activations> {
    if (!this.#act || this.#act.T !== T || this.#act.batch < batch) {
      for (const p of this.#programs.values()) p.prog.destroy();
      this.#programs.clear();
      this.#act?.destroy();
      this.#act = undefined;
      this.#device.pushErrorScope("out-of-memory");
      const act = new Activations(this.#device, this.#cfg, { batch, T, chunks: this.params.tokEmb.length });
      const oom = await this.#device.popErrorScope();
      if (oom) {
        act.destroy();
        throw new RangeError(
          `Cannot train with batch ${batch} x context ${T}: the GPU cannot hold its ${act.bytes} bytes of activations ` +
            `(${oom.message}); use a smaller batch or context`,
        );
      }
      this.#act = act;
    }
    return this.#act;
  }

  async #program(batch: number, T: number, backward: boolean): Promise<LossProgram> {
    const act = await this.#activations(batch, T);
    const key = `${batch}x${T}${backward ? "+grad" : ""}`;
    let p = this.#programs.get(key);
    if (!p) {
      const prog = new Program(this.#device, this.#pipes);
      const ops = new TrainOps(prog, act.none);
      // dropout is on in training (model.train()) and off in evaluation
      const dropout = backward && this.#cfg.drop_rate > 0 ? new DropoutSites(this.#cfg.drop_rate) : undefined;
      const parts = { cfg: this.#cfg, params: this.params, act, batch, dropout };
      recordForward(ops, parts);
      recordLoss(ops, parts, backward);
      const embedSlots = backward ? recordBackward(ops, parts) : [];
      p = { prog, embedSlots, dropout };
      this.#programs.set(key, p);
    }
    return p;
  }

  /**
   * The mean cross-entropy of a batch (the book's `calc_loss_batch`); with `backward`, its gradients
   * are added to the parameters' (`loss.backward()`).
   *
   * @param inputs Token ids, `[batch, T]`, all rows the same length, `T <= context_length`.
   * @param targets The next ids, same shape.
   * @param backward Whether to add the gradients.
   * @returns The loss, and each token's.
   */
  async loss(
    inputs: number[][],
    targets: number[][],
    backward: boolean,
  ): Promise<{ loss: number; each: Float32Array }> {
    const B = inputs.length, T = inputs[0].length, rows = B * T;
    const { prog, embedSlots, dropout } = await this.#program(B, T, backward);
    dropout?.reseed(prog, this.#seed + this.#dropped++);
    const act = this.#act!;
    const ids = Uint32Array.from(inputs.flat());
    const q = this.#device.queue;
    q.writeBuffer(act.ids, 0, ids);
    q.writeBuffer(act.targets, 0, Uint32Array.from(targets.flat()));
    if (backward) this.#writeCsr(ids, act, prog, embedSlots);
    const enc = this.#device.createCommandEncoder({ label: "train step" });
    prog.encode(enc);
    enc.copyBufferToBuffer(act.losses, 0, act.staging, 0, rows * 4);
    q.submit([enc.finish()]);
    await this.#wait(act.staging.mapAsync(MapMode.READ, 0, rows * 4));
    const each = new Float32Array(act.staging.getMappedRange(0, rows * 4).slice(0));
    act.staging.unmap();
    let sum = 0;
    for (const v of each) sum += v;
    return { loss: Math.fround(sum / rows), each };
  }

  /** Each vocabulary chunk's distinct ids of the batch and the rows that hold them. */
  #writeCsr(ids: Uint32Array, act: Activations, prog: Program, slots: number[]): void {
    const C = this.#cfg.emb_dim;
    this.params.tokEmb.forEach((chunk, i) => {
      const rowsOf = new Map<number, number[]>();
      ids.forEach((id, r) => {
        if (id >= chunk.v0 && id < chunk.v0 + chunk.rows) {
          const list = rowsOf.get(id);
          if (list) list.push(r);
          else rowsOf.set(id, [r]);
        }
      });
      const uniq = Uint32Array.from(rowsOf.keys());
      const start = new Uint32Array(uniq.length + 1);
      const pos: number[] = [];
      uniq.forEach((id, u) => {
        pos.push(...rowsOf.get(id)!);
        start[u + 1] = pos.length;
      });
      const q = this.#device.queue;
      if (uniq.length > 0) {
        q.writeBuffer(act.csr[i].uniq, 0, uniq);
        q.writeBuffer(act.csr[i].pos, 0, Uint32Array.from(pos));
      }
      q.writeBuffer(act.csr[i].start, 0, start);
      prog.set(slots[i], [C, uniq.length, chunk.v0]);
    });
  }

  /** Sets every gradient to zero (`optimizer.zero_grad()`). */
  zeroGrad(): void {
    const enc = this.#device.createCommandEncoder({ label: "zero grad" });
    for (const p of this.params.all) enc.clearBuffer(p.grad);
    this.#device.queue.submit([enc.finish()]);
  }

  /**
   * Clips the gradients' global L2 norm to `maxNorm` (`torch.nn.utils.clip_grad_norm_`).
   *
   * @param maxNorm The largest norm allowed.
   * @returns The norm before clipping.
   */
  async clipGradNorm(maxNorm: number): Promise<number> {
    const all = this.params.all;
    if (!this.#clip) {
      const prog = new Program(this.#device, this.#pipes);
      const parts: number[] = [0];
      for (const p of all) parts.push(parts[parts.length - 1] + Math.min(256, Math.ceil(p.size / 256)));
      const buf = (size: number, usage = BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC) =>
        this.#device.createBuffer({ size, usage });
      const partials = buf(parts[parts.length - 1] * 4);
      const start = buf(parts.length * 4);
      this.#device.queue.writeBuffer(start, 0, Uint32Array.from(parts));
      const out = buf(16);
      all.forEach((p, i) => prog.add("sumsq", [p.size, parts[i]], [p.grad, partials], [parts[i + 1] - parts[i]]));
      prog.add("clip_coef", [all.length, { f: 0 }], [start, partials, out], [1]);
      for (const p of all) prog.addFlat("scale", [p.size], [out, p.grad]);
      this.#clip = { prog, out, staging: buf(8, BufferUsage.MAP_READ | BufferUsage.COPY_DST) };
    }
    const { prog, out, staging } = this.#clip;
    prog.set(all.length, [all.length, { f: maxNorm }]);
    const enc = this.#device.createCommandEncoder({ label: "clip" });
    prog.encode(enc);
    enc.copyBufferToBuffer(out, 0, staging, 0, 8);
    this.#device.queue.submit([enc.finish()]);
    await this.#wait(staging.mapAsync(MapMode.READ));
    const norm = new Float32Array(staging.getMappedRange().slice(0))[0];
    staging.unmap();
    return norm;
  }

  /**
   * AdamW's running averages of each parameter tensor (`exp_avg`, `exp_avg_sq`), made (zeros) on first use.
   *
   * @returns One pair per tensor of `params.all`, in order.
   */
  moments(): { param: Param; m: GPUBuffer; v: GPUBuffer }[] {
    const all = this.params.all;
    if (!this.#moments) {
      const usage = BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC;
      this.#moments = all.map((p) => ({
        m: this.#device.createBuffer({ label: `${p.name} exp_avg`, size: p.size * 4, usage }),
        v: this.#device.createBuffer({ label: `${p.name} exp_avg_sq`, size: p.size * 4, usage }),
      }));
    }
    return all.map((param, i) => ({ param, ...this.#moments![i] }));
  }

  /**
   * One AdamW step over every parameter (`optimizer.step()`), then the parameters copied into the
   * inference weights when given.
   *
   * @param step The step number, from 1 (bias correction).
   * @param s The hyperparameters.
   * @param weights The inference weights to refresh.
   */
  adamStep(step: number, s: AdamWSettings, weights?: ModelWeights): void {
    const all = this.params.all;
    if (!this.#adam) {
      const moments = this.moments();
      const prog = new Program(this.#device, this.#pipes);
      const slots = all.map((p, i) => prog.addFlat("adamw", [p.size], [p.grad, p.buffer, moments[i].m, moments[i].v]));
      this.#adam = { prog, slots };
    }
    const bc1 = 1 - s.beta1 ** step;
    const bc2 = 1 - s.beta2 ** step;
    const f = (x: number) => ({ f: x });
    all.forEach((p, i) =>
      this.#adam!.prog.set(this.#adam!.slots[i], [
        p.size,
        f(1 - s.lr * s.weightDecay),
        f(s.beta1),
        f(s.beta2),
        f(s.lr / bc1),
        f(Math.sqrt(bc2)),
        f(s.eps),
      ])
    );
    const enc = this.#device.createCommandEncoder({ label: "adamw" });
    this.#adam.prog.encode(enc);
    if (weights) this.#copyInto(enc, weights);
    this.#device.queue.submit([enc.finish()]);
  }

  #copyInto(enc: GPUCommandEncoder, weights: ModelWeights): void {
    if (!this.#sync) {
      const prog = new Program(this.#device, this.#pipes);
      const scratch = this.#device.createCommandEncoder();
      this.params.copyInto(scratch, weights, (src, dst, N, K) => {
        prog.add("relayout", [N, K, 0], [src, dst], [Math.ceil(K / 64), N]);
      });
      scratch.finish();
      this.#sync = prog;
    }
    this.#sync.encode(enc);
    this.params.copyInto(enc, weights, () => {});
  }

  /** Frees the activations, moments and programs (not the parameters). */
  destroy(): void {
    for (const p of this.#programs.values()) p.prog.destroy();
    this.#act?.destroy();
    for (const m of this.#moments ?? []) {
      m.m.destroy();
      m.v.destroy();
    }
    this.#adam?.prog.destroy();
    this.#clip?.prog.destroy();
    this.#sync?.destroy();
  }
}
