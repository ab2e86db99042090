/**
 * Times each op of one step (for `bench/profile.ts` and tests): with `timestamp-query` where the
 * adapter has it, else by replaying each op's dispatches and timing the submission.
 *
 * @module
 */

import type { GPTModel } from "./model.ts";
import { runnerOf } from "../engine/_runner_of.ts";
import { encodeStep } from "../../kernels/mod.ts";
import { ListRecorder, PassRecorder, replay, TimedRecorder } from "../engine/_recorder.ts";

/** Milliseconds and dispatches per op name of one step, and how they were measured. */
export interface StepProfile {
  /** `"timestamp-query"` or `"replay"`. */
  method: string;
  /** Milliseconds per op name, summed over the step. */
  kernels: Record<string, number>;
  /** Dispatches per op name. */
  count: Record<string, number>;
}

/**
 * Times each kernel of one greedy step of `T` tokens per row.
 *
 * @param model The model.
 * @param B Batch rows.
 * @param T Tokens per row in the step.
 * @param pos0 Cache position of the first token (0: a full pass; T = 1 and pos0 > 0: a decoding step).
 * @returns The profile.
 */
export function profileStep(model: GPTModel, B: number, T: number, pos0 = 0): Promise<StepProfile> {
  const r = runnerOf(model);
  return r.serial("profile", async () => {
    const d = r.parts.gpu.device;
    const plan = [{ T, start: 0, pos0 }];
    const { ws, ops, screen } = await r.prepareSteps(B, plan, pos0 + T + 1, { sampling: false, steps: Infinity });
    d.queue.writeBuffer(ws.step, 0, encodeStep({ batch: B, T, pos0, L: ws.size.L }));
    const list = new ListRecorder();
    r.recordStep(list, ws, ops, { B, T }, { sample: false, screen });
    const kernels: Record<string, number> = {};
    const count: Record<string, number> = {};
    for (const c of list.calls) count[c.name] = (count[c.name] ?? 0) + 1;
    if (r.parts.gpu.timestamps) {
      const enc = d.createCommandEncoder({ label: "profile" });
      const rec = new TimedRecorder(d, enc, list.calls.length);
      for (const c of list.calls) replay(rec, c);
      const times = await rec.read((p) => r.wait(p));
      list.calls.forEach((c, i) => kernels[c.name] = (kernels[c.name] ?? 0) + times[i]);
      if (times.some((t) => t > 0)) return { method: "timestamp-query", kernels, count };
    }
    // No usable timestamps: replay each kernel's dispatches of the step R times in one pass and
    // time the submission, less the time of an empty one.
    const wall = async (enc: GPUCommandEncoder) => {
      const t = performance.now();
      d.queue.submit([enc.finish()]);
      await r.wait(d.queue.onSubmittedWorkDone());
      return performance.now() - t;
    };
    const empty: number[] = [];
    for (let i = 0; i < 3; i++) empty.push(await wall(d.createCommandEncoder()));
    const base = empty.sort((a, b) => a - b)[1];
    const R = 8;
    for (const name of Object.keys(count)) {
      const enc = d.createCommandEncoder();
      const pass = enc.beginComputePass();
      const rec = new PassRecorder(pass);
      for (let i = 0; i < R; i++) {
        for (const c of list.calls) if (c.name === name) replay(rec, c);
      }
      pass.end();
      kernels[name] = Math.max(0, (await wall(enc)) - base) / R;
    }
    return { method: "replay", kernels, count };
  });
}
