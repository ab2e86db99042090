/**
 * Training and prompt speed of this project against PyTorch (the book's GPTModel,
 * bench/torch_train.py) on this machine, side by side in one run, rounds alternating:
 *
 * - training: tokens per second of chapter 5's step (zero_grad, loss, backward, AdamW step) for
 *   GPT-2 124M at batch 2 x context 256 (the book's settings, drop_rate 0.1), f32;
 * - prefill: tokens per second of `model.forward()` on a 512-token prompt (all logits), beside the
 *   training kernels' forward pass over the same prompt (`calcLossBatch` of a trainable model).
 *
 *   deno run -A bench/train_compare.ts [--rounds 3] [--steps 2] [--batch 2] [--context 256]
 *       [--prefill 512] [--only train|prefill] [--python PATH] [--torch-device cuda]
 *
 * PyTorch is skipped with a message when the Python given (default /usr/bin/python3, Debian's
 * python3-torch) cannot import torch.
 */
import { parseArgs } from "node:util";
import { AdamW, backward, calcLossBatch, GPT_CONFIG_124M, GPTModel } from "../mod.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string" },
    steps: { type: "string" },
    batch: { type: "string" },
    context: { type: "string" },
    prefill: { type: "string" },
    only: { type: "string" },
    python: { type: "string" },
    "torch-device": { type: "string" },
  },
});
const ROUNDS = Number(values.rounds ?? 3);
const STEPS = Number(values.steps ?? 2);
const B = Number(values.batch ?? 2);
const T = Number(values.context ?? 256);
const PREFILL = Number(values.prefill ?? 512);
const PY = values.python ?? "/usr/bin/python3";
const TORCH_DEVICE = values["torch-device"] ?? "cpu";
const here = new URL(".", import.meta.url).pathname;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const range = (xs: number[]) => `${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)}`;

const hasTorch = (() => {
  try {
    return new Deno.Command(PY, { args: ["-c", "import torch"], stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
})();
if (!hasTorch) console.log(`PyTorch not found in ${PY}: only this project's numbers (apt-get install python3-torch)`);

async function torch(args: string[]): Promise<{ tok_s: number[]; device: string; threads: number; torch: string }> {
  const env = { OMP_NUM_THREADS: String(navigator.hardwareConcurrency), TORCH_DEVICE };
  const r = await new Deno.Command(PY, { args: [`${here}torch_train.py`, ...args], env, stderr: "inherit" }).output();
  if (!r.success) throw new Error(`torch_train.py ${args.join(" ")} failed`);
  return JSON.parse(new TextDecoder().decode(r.stdout));
}

const ids = (rows: number, n: number) =>
  Array.from({ length: rows }, (_, b) => Array.from({ length: n }, (_, i) => (i * 7919 + b * 104729) % 50257));

async function trainRounds(): Promise<void> {
  using model = await GPTModel.create({ ...GPT_CONFIG_124M, context_length: T }, { seed: 123, trainable: true });
  const opt = new AdamW(model, { lr: 4e-4, weightDecay: 0.1 });
  const x = ids(B, T);
  const y = x.map((r) => [...r.slice(1), r[0]]);
  const step = async () => {
    const t = performance.now();
    opt.zeroGrad();
    await backward(model, x, y);
    opt.step();
    await calcLossBatch([x[0].slice(0, 1)], [y[0].slice(0, 1)], model); // waits for the step
    return (B * T) / ((performance.now() - t) / 1000);
  };
  await step(); // warm-up: pipelines, activations
  const ours: number[] = [], theirs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (let s = 0; s < STEPS; s++) ours.push(await step());
    if (hasTorch) theirs.push(...(await torch(["train", String(B), String(T), String(STEPS)])).tok_s);
    console.log(
      `round ${r + 1}: ours ${median(ours.slice(-STEPS)).toFixed(1)} tokens/s` +
        (hasTorch ? `, PyTorch ${median(theirs.slice(-STEPS)).toFixed(1)}` : ""),
    );
  }
  console.log(
    `training 124M, batch ${B} x context ${T} (${model.adapter}): ours median ${median(ours).toFixed(1)} tokens/s (${
      range(ours)
    })` +
      (hasTorch
        ? `, PyTorch ${median(theirs).toFixed(1)} (${range(theirs)}): ${(median(ours) / median(theirs)).toFixed(3)}x`
        : ""),
  );
}

async function prefillRounds(): Promise<void> {
  using model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123 });
  using trainable = await GPTModel.create({ ...GPT_CONFIG_124M, context_length: PREFILL }, {
    seed: 123,
    trainable: true,
  });
  const long = ids(1, PREFILL);
  const next = [[...long[0].slice(1), 0]];
  const time = async (fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn();
    return PREFILL / ((performance.now() - t) / 1000);
  };
  await time(() => model.forward(long));
  await time(() => calcLossBatch(long, next, trainable));
  const fwd: number[] = [], tiled: number[] = [], theirs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    fwd.push(await time(() => model.forward(long)));
    tiled.push(await time(() => calcLossBatch(long, next, trainable)));
    if (hasTorch) theirs.push(...(await torch(["prefill", String(PREFILL), "1"])).tok_s);
    console.log(
      `round ${r + 1}: forward() ${fwd.at(-1)!.toFixed(1)}, training kernels ${tiled.at(-1)!.toFixed(1)}` +
        (hasTorch ? `, PyTorch ${theirs.at(-1)!.toFixed(1)}` : "") + " tokens/s",
    );
  }
  const vs = (xs: number[]) => hasTorch ? ` = ${(median(xs) / median(theirs)).toFixed(3)}x PyTorch` : "";
  console.log(
    `prefill ${PREFILL} tokens (${model.adapter}): forward() median ${median(fwd).toFixed(1)} tokens/s (${range(fwd)})${
      vs(fwd)
    }; ` +
      `training kernels' forward ${median(tiled).toFixed(1)} (${range(tiled)})${vs(tiled)}` +
      (hasTorch ? `; PyTorch ${median(theirs).toFixed(1)} (${range(theirs)})` : ""),
  );
}

console.log(`bench/train_compare.ts: ${ROUNDS} rounds, ${navigator.hardwareConcurrency} CPUs`);
if (values.only !== "prefill") await trainRounds();
if (values.only !== "train") await prefillRounds();
