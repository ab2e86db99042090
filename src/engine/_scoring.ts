/**
 * What a model says about every position of its input: the logits (the book's `model(idx)`), the
 * cross-entropy against targets (the book's `calc_loss_batch`), and the divergence of one model's
 * distributions from another's. The logits of every position stay on the GPU; only what is asked
 * for comes back.
 *
 * @module
 */

import type { Runner } from "./_runner.ts";
import { OpFactory } from "./_op_factory.ts";
import { PassRecorder } from "./_recorder.ts";
import { buildOutHeadAll, recordAllLogits } from "./forward.ts";
import { layoutOf, pipelineOf } from "../gpu/pipelines.ts";
import { CROSS_ENTROPY, encodeParams, encodeStep, KL_DIVERGENCE, LOSS_PARAMS } from "../../kernels/mod.ts";
import { BufferUsage } from "../gpu/flags.ts";

/** The logits of every position, `[rows, vp]`, in a buffer of their own, and what reads them. */
interface Scored {
  /** The buffer. */
  logits: GPUBuffer;
  /** Token rows (B x T). */
  rows: number;
  /** Rows per binding of the buffer. */
  groupRows: number;
}

/**
 * Runs the model on `[B, T]` rows and records the logits of every position into a new buffer;
 * `use` records what reads it and returns what to read back. Call inside the runner's queue.
 */
async function withLogits<T>(
  r: Runner,
  flat: Uint32Array,
  shape: { B: number; T: number },
  enc: GPUCommandEncoder,
  temp: GPUBuffer[],
): Promise<Scored> {
  const d = r.parts.gpu.device;
  const { B, T } = shape;
  const vp = r.vp;
  const rows = B * T;
  if (rows > 65535) {
    throw new RangeError(
      `Cannot run the model: ${B} rows x ${T} tokens are ${rows} token rows, over the 65535 one dispatch takes; split the batch`,
    );
  }
  // rows per binding: a multiple of 64, so that every group's offsets into per-row buffers are aligned
  const fit = Math.floor(d.limits.maxStorageBufferBindingSize / (vp * 4));
  const groupRows = rows <= fit ? rows : Math.max(64, fit - (fit % 64));
  await r.kernels.prepareRows([rows, groupRows, rows % groupRows || groupRows]);
  const { ws, ops } = r.workspace({ B, rows, L: T, cap: T });
  const init = new Uint32Array(B * ws.size.L);
  for (let b = 0; b < B; b++) init.set(flat.subarray(b * T, (b + 1) * T), b * ws.size.L);
  d.queue.writeBuffer(ws.tokens, 0, init);
  d.queue.writeBuffer(ws.step, 0, encodeStep({ batch: B, T, L: ws.size.L }));
  const uniform = (label: string, words: Uint32Array<ArrayBuffer>) => {
    const b = d.createBuffer({ label, size: 48, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST });
    d.queue.writeBuffer(b, 0, new Uint32Array([...words, 0, 0].slice(0, 12)));
    temp.push(b);
    return b;
  };
  const logits = d.createBuffer({
    label: "forward.logits",
    size: rows * vp * 4,
    usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC,
  });
  temp.push(logits);
  const make = new OpFactory(d, r.kernels, ws, { cfg: r.parts.cfg, vp }, uniform);
  const pass = enc.beginComputePass({ label: "forward" });
  const rec = new PassRecorder(pass);
  const outHead = buildOutHeadAll(make, r.parts.weights, ws.x_norm, { logits, vp, rows, groupRows });
  recordAllLogits(rec, ops, { B, T }, outHead);
  pass.end();
  return { logits, rows, groupRows };
}

/** Runs `fn` in the runner's queue with an encoder and a list of buffers freed at the end. */
function scoped<T>(r: Runner, what: string, fn: (enc: GPUCommandEncoder, temp: GPUBuffer[]) => Promise<T>): Promise<T> {
  return r.serial(what, async () => {
    const temp: GPUBuffer[] = [];
    try {
      const result = await fn(r.parts.gpu.device.createCommandEncoder({ label: what }), temp);
      // destroyed while the GPU ran: what came back is not the model's answer
      r.check(what);
      return result;
    } finally {
      for (const b of temp) b.destroy();
    }
  });
}

/**
 * The logits of every position of equal-length rows.
 *
 * @param r The model's runner.
 * @param flat The rows, `[B, T]`.
 * @param B Batch rows.
 * @param T Tokens per row.
 * @returns The logits, `[B, T, vocab_size]`.
 */
export function forwardLogits(r: Runner, flat: Uint32Array, B: number, T: number): Promise<Float32Array> {
  return scoped(r, "run the model", async (enc, temp) => {
    const { logits, rows } = await withLogits(r, flat, { B, T }, enc, temp);
    const vp = r.vp;
    const V = r.parts.cfg.vocab_size;
    const raw = new Float32Array((await r.readback(enc, [[logits, rows * vp * 4]]))[0]);
    const out = new Float32Array(rows * V);
    for (let i = 0; i < rows; i++) out.set(raw.subarray(i * vp, i * vp + V), i * V);
    return out;
  });
}

/** Records a per-row kernel over the row groups of one or two logits buffers into `out`. */
async function perRow(
  r: Runner,
  enc: GPUCommandEncoder,
  temp: GPUBuffer[],
  spec: typeof CROSS_ENTROPY,
  inputs: { a: Scored; b: GPUBuffer; bRowBytes: number; outRowBytes: number; out: GPUBuffer },
): Promise<void> {
  const d = r.parts.gpu.device;
  const pipe = await pipelineOf(d, spec);
  const { a, b, bRowBytes, outRowBytes, out } = inputs;
  const rowBytes = r.vp * 4;
  const pass = enc.beginComputePass({ label: spec.name });
  pass.setPipeline(pipe);
  for (let r0 = 0; r0 < a.rows; r0 += a.groupRows) {
    const n = Math.min(a.groupRows, a.rows - r0);
    const params = d.createBuffer({ size: 16, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST });
    temp.push(params);
    d.queue.writeBuffer(params, 0, encodeParams(LOSS_PARAMS, { V: r.parts.cfg.vocab_size, ldl: r.vp, rows: n }));
    const range = (buffer: GPUBuffer, bytes: number) => ({ buffer, offset: r0 * bytes, size: n * bytes });
    pass.setBindGroup(
      0,
      d.createBindGroup({
        layout: layoutOf(d, spec),
        entries: [
          { binding: 0, resource: { buffer: params } },
          { binding: 1, resource: range(a.logits, rowBytes) },
          { binding: 2, resource: range(b, bRowBytes) },
          { binding: 3, resource: range(out, outRowBytes) },
        ],
      }),
    );
    pass.dispatchWorkgroups(n);
  }
  pass.end();
}

/**
 * The cross-entropy of each position's logits against its target, like PyTorch's
 * `cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")`.
 *
 * @param r The model's runner.
 * @param flat The input rows, `[B, T]`.
 * @param targets The target ids, `[B, T]`.
 * @param shape Batch rows and tokens per row.
 * @returns One loss per position, `[B, T]`.
 */
export function tokenLosses(
  r: Runner,
  flat: Uint32Array,
  targets: Uint32Array,
  shape: { B: number; T: number },
): Promise<Float32Array> {
  return scoped(r, "compute the loss", async (enc, temp) => {
    const d = r.parts.gpu.device;
    const scored = await withLogits(r, flat, shape, enc, temp);
    const storage = (label: string, bytes: number) => {
      const b = d.createBuffer({
        label,
        size: Math.max(16, Math.ceil(bytes / 16) * 16),
        usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST,
      });
      temp.push(b);
      return b;
    };
    const t = storage("loss.targets", targets.byteLength);
    d.queue.writeBuffer(t, 0, targets as Uint32Array<ArrayBuffer>);
    const out = storage("loss", scored.rows * 4);
    await perRow(r, enc, temp, CROSS_ENTROPY, { a: scored, b: t, bRowBytes: 4, outRowBytes: 4, out });
    return new Float32Array((await r.readback(enc, [[out, scored.rows * 4]]))[0]);
  });
}

/**
 * The KL divergence of model `b`'s next-token distribution from model `a`'s at every position,
 * and whether their greedy choices agree.
 *
 * @param a The reference model's runner.
 * @param b The compared model's runner (another model on the same device).
 * @param flat The input rows, `[B, T]`.
 * @param shape Batch rows and tokens per row.
 * @returns Per position: the divergence in nats, and 1 where the argmaxes agree, else 0.
 */
export function compareLogits(
  a: Runner,
  b: Runner,
  flat: Uint32Array,
  shape: { B: number; T: number },
): Promise<{ kl: Float32Array; agree: Float32Array }> {
  if (a === b) throw new RangeError("Cannot compare a model with itself: pass two models");
  if (a.parts.cfg.vocab_size !== b.parts.cfg.vocab_size) {
    throw new RangeError(
      `Cannot compare models with vocabularies of ${a.parts.cfg.vocab_size} and ${b.parts.cfg.vocab_size} tokens`,
    );
  }
  return scoped(a, "compare the models", (enc, temp) =>
    b.serial("compare the models", async () => {
      const d = a.parts.gpu.device;
      const sa = await withLogits(a, flat, shape, enc, temp);
      const sb = await withLogits(b, flat, shape, enc, temp);
      const out = d.createBuffer({
        label: "kl",
        size: Math.max(16, sa.rows * 8),
        usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC,
      });
      temp.push(out);
      await perRow(a, enc, temp, KL_DIVERGENCE, { a: sa, b: sb.logits, bRowBytes: a.vp * 4, outRowBytes: 8, out });
      const both = new Float32Array((await a.readback(enc, [[out, sa.rows * 8]]))[0]);
      const kl = new Float32Array(sa.rows);
      const agree = new Float32Array(sa.rows);
      for (let i = 0; i < sa.rows; i++) [kl[i], agree[i]] = [both[2 * i], both[2 * i + 1]];
      return { kl, agree };
    }));
}
