/**
 * The screened greedy head (CPU adapters): the head's logits estimated from an 8-bit copy with an
 * error bound each, exact logits only for the candidates, and the full head and argmax as a
 * fallback when a row has too many. The chosen ids are the full head's (see
 * `kernels/head_screen.ts` for the proof).
 *
 * @module
 */

import type { GPTConfig } from "../weights/config.ts";
import type { HeadScreenMode } from "./backend.ts";
import type { Kernels } from "./_kernels.ts";
import type { Linear, StepShape } from "./_ops.ts";
import type { Recorder } from "./_recorder.ts";
import type { Workspace } from "./_workspace.ts";
import { layoutOf } from "../gpu/pipelines.ts";
import { roundUp, type VocabChunk, type WeightDType } from "../gpu/weights.ts";
import {
  ARGMAX_PARAMS,
  ARGMAX_SERIAL,
  encodeParams,
  HEAD_MARK,
  HEAD_PARAMS,
  HEAD_PICK,
  HEAD_QUANT,
  HEAD_QUANT_F16,
  HEAD_REFINE,
  HEAD_REFINE_F16,
  HEAD_ROUTE,
  HEAD_SCREEN,
  REFINE_INVOCATIONS,
  SCREEN_GROUP,
} from "../../kernels/mod.ts";
import { BufferUsage, MapMode } from "../gpu/flags.ts";

/**
 * Generation calls of at least this many steps build the screening copy of the head (one pass
 * over the head, 0.16-0.31 s for GPT-2 124M on llvmpipe, compiling included); later calls use it
 * whatever their length. Each screened step saves about 30 ms there, so much shorter calls would
 * not repay it.
 */
export const SCREEN_MIN_STEPS = 32;

/**
 * A step falls back to the full head when a batch row has more than `vocab / SCREEN_FALLBACK`
 * candidates: each costs about 4.4 µs on llvmpipe (a strided pass over its weights), so about
 * vocab / 8 of them would cost what the full head saves.
 */
const SCREEN_FALLBACK = 16;

/** The bind groups and buffers of one workspace. */
interface Bound {
  lo: GPUBuffer;
  count: GPUBuffer;
  /** Full-head dispatch sizes for this call's batch (written per call), and the route's copy. */
  table: GPUBuffer;
  args: GPUBuffer;
  /** Steps screened and steps that fell back to the full head, since the call began. */
  stats: GPUBuffer;
  screen: GPUBindGroup[];
  mark: GPUBindGroup;
  route: GPUBindGroup;
  refine: GPUBindGroup[];
  pick: GPUBindGroup;
  argmax: GPUBindGroup;
}

/** What the screen needs from its model. */
export interface HeadScreenModel {
  /** The device. */
  device: GPUDevice;
  /** The model's kernels. */
  kernels: Kernels;
  /** The configuration. */
  cfg: Required<GPTConfig>;
  /** The padded vocabulary. */
  vp: number;
  /** The head's vocabulary chunks. */
  head: VocabChunk[];
  /** How the weights are stored. */
  dtype: WeightDType;
  /** Waits for a GPU promise, or rejects when the device is lost. */
  wait: <T>(p: Promise<T>) => Promise<T>;
}

/** The 8-bit copy of the head, made on first use, and when greedy calls use it. */
export class HeadScreen {
  #m: HeadScreenModel;
  #mode: HeadScreenMode;
  #buffers: GPUBuffer[] = [];
  #chunks?: { q: GPUBuffer; sc: GPUBuffer; params: GPUBuffer }[];
  #all?: GPUBuffer;
  #bound = new WeakMap<Workspace, Bound>();
  /** Set when most steps of a screened call fell back to the full head: screening stops. */
  #off = false;

  /**
   * Sets the screen up (nothing is made before a call needs it).
   *
   * @param model What the screen needs from its model.
   * @param mode The profile's choice.
   */
  constructor(model: HeadScreenModel, mode: HeadScreenMode) {
    this.#m = model;
    this.#mode = mode;
  }

  /**
   * Whether a greedy call of `steps` steps screens the head: always, never, or ("auto") once the
   * copy exists or for calls long enough to repay it, unless an earlier call turned it off.
   *
   * @param steps Steps of the call.
   * @param sampling Whether the call samples (never screened).
   * @returns True to screen.
   */
  wants(steps: number, sampling: boolean): boolean {
    if (sampling || this.#mode === "never") return false;
    if (this.#mode === "always") return true;
    return !this.#off && (this.#chunks !== undefined || steps >= SCREEN_MIN_STEPS);
  }

  /** Compiles the screening kernels and makes the 8-bit copy of the head (once). */
  async build(): Promise<void> {
    if (this.#chunks) return;
    const { device: d, kernels, head, cfg, vp } = this.#m;
    const f16 = this.#m.dtype === "f16";
    const quant = f16 ? HEAD_QUANT_F16 : HEAD_QUANT;
    await kernels.prepareAll([
      quant,
      HEAD_SCREEN,
      HEAD_MARK,
      f16 ? HEAD_REFINE_F16 : HEAD_REFINE,
      HEAD_PICK,
      HEAD_ROUTE,
    ]);
    const { emb_dim: C, vocab_size: V } = cfg;
    const G = Math.ceil(V / SCREEN_GROUP);
    const buffers: GPUBuffer[] = [];
    const uniform = (words: Uint32Array<ArrayBuffer>) => {
      const b = d.createBuffer({
        label: "head_screen.params",
        size: 32,
        usage: BufferUsage.UNIFORM,
        mappedAtCreation: true,
      });
      new Uint32Array(b.getMappedRange()).set(words);
      b.unmap();
      buffers.push(b);
      return b;
    };
    const storage = (label: string, size: number) => {
      const b = d.createBuffer({ label, size: roundUp(size, 16), usage: BufferUsage.STORAGE });
      buffers.push(b);
      return b;
    };
    const enc = d.createCommandEncoder({ label: "head_screen.quantize" });
    const pass = enc.beginComputePass();
    pass.setPipeline(kernels.pipeline(quant));
    const chunks = head.map((c) => {
      const q = storage(`head_screen.q[${c.v0}]`, C * c.ldw);
      const sc = storage(`head_screen.sc[${c.v0}]`, c.ldw * 8);
      const params = uniform(encodeParams(HEAD_PARAMS, { K: C, N: c.N, v0: c.v0, G, ldh: vp, limit: 0, nargs: 0 }));
      pass.setBindGroup(
        0,
        d.createBindGroup({
          layout: layoutOf(d, quant),
          entries: [params, c.buffer, q, sc].map((buffer, binding) => ({ binding, resource: { buffer } })),
        }),
      );
      pass.dispatchWorkgroups(Math.ceil(c.ldw / 4 / 64));
      return { q, sc, params };
    });
    pass.end();
    d.queue.submit([enc.finish()]);
    try {
      await this.#m.wait(d.queue.onSubmittedWorkDone());
    } catch (e) {
      for (const b of buffers) b.destroy();
      throw e;
    }
    const limit = Math.ceil(V / SCREEN_FALLBACK);
    this.#all = uniform(
      encodeParams(HEAD_PARAMS, { K: C, N: V, v0: 0, G, ldh: vp, limit, nargs: chunks.length + 1 }),
    );
    this.#buffers = buffers;
    this.#chunks = chunks;
  }

  /**
   * Resets the screen's counters and writes the full head's dispatch sizes for `B` rows.
   *
   * @param ws The call's workspace.
   * @param B Batch rows.
   * @param fullHead The full head's products (for their workgroup counts).
   */
  start(ws: Workspace, B: number, fullHead: Linear[]): void {
    const s = this.#bind(ws);
    const d = this.#m.device;
    d.queue.writeBuffer(s.lo, 0, new Uint32Array(ws.size.B));
    d.queue.writeBuffer(s.count, 0, new Uint32Array(ws.size.B));
    d.queue.writeBuffer(s.stats, 0, new Uint32Array(4));
    const sizes = fullHead.map((h) => [...h.workgroups(B), 1, 0]);
    d.queue.writeBuffer(s.table, 0, new Uint32Array([...sizes.flat(), B, 1, 1, 0]));
  }

  /**
   * Records the screened greedy choice for a step: screen, mark, route, refine, pick, then the full
   * head and argmax with zero workgroups unless the route fell back to them.
   *
   * @param rec Where dispatches go.
   * @param ws The workspace.
   * @param s The step's shape.
   * @param fullHead The full head's products.
   */
  record(rec: Recorder, ws: Workspace, s: StepShape, fullHead: Linear[]): void {
    const g = this.#bind(ws);
    const k = this.#m.kernels;
    const B = s.B;
    const groups = Math.ceil(this.#m.cfg.vocab_size / SCREEN_GROUP);
    const refine = this.#m.dtype === "f16" ? HEAD_REFINE_F16 : HEAD_REFINE;
    this.#m.head.forEach((c, i) => {
      rec.dispatch("head screen", k.pipeline(HEAD_SCREEN), g.screen[i], Math.ceil(c.N / SCREEN_GROUP / 16), B);
    });
    rec.dispatch("head mark", k.pipeline(HEAD_MARK), g.mark, Math.ceil(groups / 16), B);
    rec.dispatch("head route", k.pipeline(HEAD_ROUTE), g.route, 1);
    g.refine.forEach((r) => rec.dispatch("head refine", k.pipeline(refine), r, REFINE_INVOCATIONS / 16, B));
    rec.dispatch("head pick", k.pipeline(HEAD_PICK), g.pick, B);
    fullHead.forEach((h, i) => h.recordIndirect(rec, s, [g.args, 12 * i]));
    rec.dispatchIndirect("argmax (fallback)", k.pipeline(ARGMAX_SERIAL), g.argmax, [g.args, 12 * fullHead.length]);
  }

  /**
   * Encodes a copy of the screen's step counts into a mappable buffer.
   *
   * @param ws The workspace.
   * @param enc The call's encoder.
   * @returns The buffer, for {@linkcode HeadScreen.checkStats}.
   */
  copyStats(ws: Workspace, enc: GPUCommandEncoder): GPUBuffer {
    const out = this.#m.device.createBuffer({
      label: "head_screen.stats.read",
      size: 16,
      usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST,
    });
    enc.copyBufferToBuffer(this.#bind(ws).stats, 0, out, 0, 16);
    return out;
  }

  /**
   * Stops screening ("auto") when more than half of a call's screened steps (at least
   * {@linkcode SCREEN_MIN_STEPS}) fell back to the full head: then the screen only adds its cost.
   *
   * @param out The buffer from {@linkcode HeadScreen.copyStats}, after the call's submission.
   */
  async checkStats(out: GPUBuffer): Promise<void> {
    try {
      await this.#m.wait(out.mapAsync(MapMode.READ));
      const [steps, fallbacks] = new Uint32Array(out.getMappedRange());
      if (steps >= SCREEN_MIN_STEPS && 2 * fallbacks > steps) this.#off = true;
    } finally {
      out.destroy();
    }
  }

  /** Frees the copy. */
  destroy(): void {
    for (const b of this.#buffers) b.destroy();
    this.#buffers = [];
    this.#chunks = undefined;
  }

  /** The workspace's screening buffers and bind groups (made on first use, freed with it). */
  #bind(ws: Workspace): Bound {
    const old = this.#bound.get(ws);
    if (old) return old;
    const d = this.#m.device;
    const { cfg, vp, head } = this.#m;
    const chunks = this.#chunks!;
    const all = this.#all!;
    const B = ws.size.B;
    const G = Math.ceil(cfg.vocab_size / SCREEN_GROUP);
    const storage = (label: string, bytes: number, usage = 0) =>
      ws.adopt(d.createBuffer({
        label,
        size: roundUp(Math.max(bytes, 16), 16),
        usage: BufferUsage.STORAGE | BufferUsage.COPY_DST | usage,
      }));
    const hi = storage("head_screen.hi", B * vp * 4);
    const ghi = storage("head_screen.ghi", B * G * 4);
    const lo = storage("head_screen.lo", B * 4);
    const count = storage("head_screen.count", B * 4);
    const list = storage("head_screen.list", B * vp * 4);
    const vals = storage("head_screen.vals", B * vp * 4);
    const nargs = head.length + 1;
    const table = storage("head_screen.table", nargs * 16);
    const stats = storage("head_screen.stats", 16, BufferUsage.COPY_SRC);
    const args = ws.adopt(d.createBuffer({
      label: "head_screen.args",
      size: nargs * 12,
      usage: BufferUsage.STORAGE | BufferUsage.INDIRECT,
    }));
    const bg = (spec: typeof HEAD_MARK, res: GPUBuffer[]) =>
      d.createBindGroup({
        label: spec.name,
        layout: layoutOf(d, spec),
        entries: res.map((buffer, binding) => ({ binding, resource: { buffer } })),
      });
    const refine = this.#m.dtype === "f16" ? HEAD_REFINE_F16 : HEAD_REFINE;
    const V = cfg.vocab_size;
    const argmaxParams = ws.uniform(
      "head_screen.argmax.params",
      encodeParams(ARGMAX_PARAMS, { V, ldl: vp, G: 0, chunk: 0 }),
    );
    const bound: Bound = {
      lo,
      count,
      table,
      args,
      stats,
      route: bg(HEAD_ROUTE, [all, ws.step, table, args, count, stats]),
      screen: chunks.map((c) => bg(HEAD_SCREEN, [c.params, ws.step, ws.last, c.q, c.sc, hi, ghi, lo])),
      mark: bg(HEAD_MARK, [all, ws.step, hi, ghi, lo, count, list]),
      refine: chunks.map((c, i) => bg(refine, [c.params, ws.step, ws.last, head[i].buffer, count, list, vals])),
      pick: bg(HEAD_PICK, [all, ws.step, list, vals, ws.tokens, count, lo]),
      argmax: bg(ARGMAX_SERIAL, [argmaxParams, ws.step, ws.logits, ws.tokens]),
    };
    this.#bound.set(ws, bound);
    return bound;
  }
}
