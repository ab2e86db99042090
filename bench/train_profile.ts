/**
 * Where a training step's time goes: every dispatch of one step (forward, loss, backward) timed
 * with `timestamp-query`, summed by kernel and by part of the model. GPT-2 124M, f32.
 *
 *   deno run -A bench/train_profile.ts [BATCH] [CONTEXT]      (default 2 256)
 */
import { GPT_CONFIG_124M, GPTModel } from "../mod.ts";
import { trainingOf } from "../src/model/_trainable.ts";
import { getGpu } from "../src/gpu/device.ts";
import { Program, trainPipelines } from "../src/engine/training/_program.ts";
import { TrainOps } from "../src/engine/training/_ops.ts";
import { Activations } from "../src/engine/training/_activations.ts";
import { recordBackward, recordForward, recordLoss } from "../src/engine/training/step.ts";

const B = Number(Deno.args[0] ?? 2), T = Number(Deno.args[1] ?? 256);
const gpu = await getGpu();
if (!gpu.timestamps) throw new Error("this adapter has no timestamp-query");
const cfg = { ...GPT_CONFIG_124M, context_length: T, drop_rate: 0 };
using model = await GPTModel.create(cfg, { seed: 123, trainable: true });
const { device } = gpu;
const params = trainingOf(model).state.params;
const act = new Activations(device, model.config, { batch: B, T, chunks: params.tokEmb.length });
const prog = new Program(device, await trainPipelines(device));
const ops = new TrainOps(prog, act.none);
const parts = { cfg: model.config, params, act, batch: B };
recordForward(ops, parts);
const nForward = prog.length;
recordLoss(ops, parts, true);
const nLoss = prog.length;
recordBackward(ops, parts);
const ids = Uint32Array.from({ length: B * T }, (_, i) => (i * 7919) % 50257);
device.queue.writeBuffer(act.ids, 0, ids);
device.queue.writeBuffer(act.targets, 0, ids);
const n = prog.length;
const qs = device.createQuerySet({ type: "timestamp", count: 2 * n });
const resolve = device.createBuffer({ size: 16 * n, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
const read = device.createBuffer({ size: 16 * n, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
let kernels: string[] = [];
for (let r = 0; r < 2; r++) { // the first run warms up
  const enc = device.createCommandEncoder();
  kernels = prog.encodeTimed(enc, qs);
  enc.resolveQuerySet(qs, 0, 2 * n, resolve, 0);
  enc.copyBufferToBuffer(resolve, 0, read, 0, 16 * n);
  device.queue.submit([enc.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  if (r === 0) read.unmap();
}
const t = new BigUint64Array(read.getMappedRange());
const ms = (i: number) => Number(t[2 * i + 1] - t[2 * i]) / 1e6;
const byKernel = new Map<string, number>();
const byPart = { forward: 0, "head and loss (with the head's backward)": 0, backward: 0 };
let total = 0;
kernels.forEach((k, i) => {
  byKernel.set(k, (byKernel.get(k) ?? 0) + ms(i));
  const part = i < nForward ? "forward" : i < nLoss ? "head and loss (with the head's backward)" : "backward";
  byPart[part] += ms(i);
  total += ms(i);
});
console.log(
  `${gpu.description}; GPT-2 124M, batch ${B} x context ${T}; ${n} dispatches, ${total.toFixed(0)} ms of kernels`,
);
for (const [k, v] of Object.entries(byPart)) {
  console.log(`  ${k.padEnd(42)} ${v.toFixed(0).padStart(7)} ms  ${(100 * v / total).toFixed(1)}%`);
}
for (const [k, v] of [...byKernel].sort((a, b) => b[1] - a[1])) {
  console.log(`  ${k.padEnd(42)} ${v.toFixed(0).padStart(7)} ms  ${(100 * v / total).toFixed(1)}%`);
}
act.destroy();
