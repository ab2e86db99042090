// Chapter 5 on the GPU against PyTorch (tests/testdata/train.json, written by train_reference.py):
// the data loader's order, every step's loss, the evaluations, the first step's gradients, the
// samples after each epoch, gradient accumulation and clipping, and the 124M model for a few steps.
import assert from "node:assert/strict";
import { fixture, TESTDATA } from "./_helpers.ts";
import { GPTModel } from "../src/model/model.ts";
import { readTensor, trainingOf } from "../src/model/_trainable.ts";
import { getGpu } from "../src/gpu/device.ts";
import { createDataloaderV1, type DataLoader } from "../src/train/dataloader.ts";
import { AdamW, clipGradNorm } from "../src/train/optimizer.ts";
import {
  backward,
  calcLossBatch,
  evaluateModel,
  generateAndPrintSample,
  trainModelSimple,
} from "../src/train/train.ts";
import { decode } from "../src/text/tokenizer.ts";
import { defaultGenerator, TorchGenerator } from "../src/weights/torch_random.ts";
import { parameterDraws } from "../src/weights/init.ts";
import type { GPTConfig } from "../src/weights/config.ts";

interface Case {
  name: string;
  config: Required<GPTConfig>;
  chars: number | null;
  trainRatio: number;
  batchSize: number;
  shuffle: boolean;
  numEpochs: number;
  evalFreq: number;
  evalIter: number;
  lr: number;
  weightDecay: number;
  maxNewTokens: number;
  accumulate?: number;
  clip?: number;
}
interface Ref {
  name: string;
  losses: number[];
  batches: number[][];
  evals: { step: number; epoch: number; train: number; val: number; tokensSeen: number }[];
  samples: number[][];
  gradients: Record<string, { norm: number; sum: number; values: number[] }>;
  gradNorms?: number[];
}

const SPEC = fixture<{ text: string; startContext: string; cases: Case[] }>("train_cases.json");
const REF = fixture<{ cases: Ref[] }>("train.json");
const TEXT = Array.from(Deno.readTextFileSync(new URL(`./testdata/${SPEC.text}`, import.meta.url)));

function setup(name: string, generator: TorchGenerator) {
  const c = SPEC.cases.find((c) => c.name === name)!;
  const ref = REF.cases.find((c) => c.name === name)!;
  const chars = c.chars === null ? TEXT : TEXT.slice(0, c.chars);
  const split = Math.floor(c.trainRatio * chars.length);
  const ctx = c.config.context_length;
  const common = { batchSize: c.batchSize, maxLength: ctx, stride: ctx };
  const train = createDataloaderV1(chars.slice(0, split).join(""), {
    ...common,
    shuffle: c.shuffle,
    dropLast: true,
    generator,
  });
  // the validation loader as users write it: no generator, so the default one (the last model's,
  // which is `generator` unless a test passes another)
  const val = createDataloaderV1(chars.slice(split).join(""), {
    ...common,
    shuffle: false,
    dropLast: false,
    ...(generator === defaultGenerator() ? {} : { generator }),
  });
  return { c, ref, train, val };
}

/** Relative closeness: |a - b| <= rtol |b| + atol. */
function near(a: number, b: number, rtol: number, atol = 0): boolean {
  return Math.abs(a - b) <= rtol * Math.abs(b) + atol;
}

function assertLosses(got: number[], want: number[], what: string): void {
  assert.equal(got.length, want.length, `${what}: ${got.length} values, expected ${want.length}`);
  got.forEach((v, i) => assert.ok(near(v, want[i], 1e-4), `${what} ${i}: ${v}, PyTorch ${want[i]}`));
}

/** Each parameter's gradient: its norm and 64 sampled values within 1e-4 of the tensor's scale. */
async function assertGradients(model: GPTModel, want: Ref["gradients"]): Promise<void> {
  const device = (await getGpu()).device;
  const params = trainingOf(model).state.params;
  for (const [name, g] of Object.entries(want)) {
    const t = await readTensor(device, params, name, true);
    assert.ok(t, `no tensor ${name}`);
    const n = t.data.length;
    let norm = 0;
    for (const v of t.data) norm += v * v;
    norm = Math.sqrt(norm);
    // a gradient that is zero in exact arithmetic (the key bias's) is rounding noise on both sides
    const floor = 1e-7;
    assert.ok(near(norm, g.norm, 1e-4, floor), `${name}: gradient norm ${norm}, PyTorch ${g.norm}`);
    const scale = g.norm / Math.sqrt(n);
    g.values.forEach((v, i) => {
      const got = t.data[Math.floor((i * n) / 64)];
      assert.ok(near(got, v, 1e-4, 1e-4 * scale + floor), `${name}[${Math.floor((i * n) / 64)}]: ${got}, PyTorch ${v}`);
    });
  }
}

/**
 * Checks the gradients of some tensors along a random direction against the loss's central
 * difference, with the same dropout masks for every pass (from `step`).
 */
async function assertDirectional(model: GPTModel, names: string[], batch: [number[][], number[][]], step = 0) {
  const device = (await getGpu()).device;
  const state = trainingOf(model).state;
  const g = new TorchGenerator(3);
  const base = await Promise.all(names.map((n) => readTensor(device, state.params, n)));
  const dirs = base.map((t) => {
    const d = new Float32Array(t!.data.length);
    g.uniform(d, -1, 1);
    return d;
  });
  const loss = async (eps: number) => {
    names.forEach((name, i) => {
      const data = base[i]!.data.map((v, j) => v + eps * dirs[i][j]);
      state.params.write({ name, shape: base[i]!.shape, data });
    });
    state.dropoutStep = step;
    return await backward(model, ...batch);
  };
  state.zeroGrad();
  await loss(0);
  const grads = await Promise.all(names.map((n) => readTensor(device, state.params, n, true)));
  let dot = 0;
  grads.forEach((t, i) => t!.data.forEach((v, j) => dot += v * dirs[i][j]));
  const eps = 1e-2;
  const fd = ((await loss(eps)) - (await loss(-eps))) / (2 * eps);
  await loss(0);
  assert.ok(Math.abs(dot) > 0.01, `directional derivative ${dot} is too small to check`);
  assert.ok(near(fd, dot, 0.01), `directional derivative ${dot}, central difference ${fd}`);
}

Deno.test("train: model.generator continues where drawing the parameters left PyTorch's generator", () => {
  const cfg = SPEC.cases[0].config;
  const g = new TorchGenerator(123);
  g.skip(parameterDraws(cfg));
  // the first draw of the book's main() after GPTModel(cfg): the training loader's base seed
  const { ref, train } = setup(SPEC.cases[0].name, g);
  const first = train[Symbol.iterator]().next().value!;
  assert.deepEqual(first[0], ref.batches[0].map((i) => train.dataset.inputIds[i]));
});

Deno.test("train: shuffled and ordered loaders give PyTorch's batches, evaluations' draws included", () => {
  for (const c of SPEC.cases) {
    const g = new TorchGenerator(123);
    g.skip(parameterDraws(c.config));
    const { ref, train, val } = setup(c.name, g);
    const seen: number[][] = [];
    const index = (rows: number[][]) => rows.map((r) => train.dataset.inputIds.indexOf(r));
    const drain = (l: DataLoader, n: number) => {
      let i = 0;
      for (const _ of l) if (++i >= n) break;
    };
    let step = -1;
    const acc = c.accumulate ?? 1;
    for (let e = 0; e < c.numEpochs; e++) {
      let i = 0;
      for (const [x] of train) {
        seen.push(index(x));
        if ((++i) % acc !== 0) continue;
        if (++step % c.evalFreq === 0) {
          drain(train, c.evalIter);
          drain(val, c.evalIter);
        }
      }
    }
    assert.deepEqual(seen, ref.batches, c.name);
  }
});

/** The book's loop (`trainModelSimple`) on a case, checking the first step's gradients on the way. */
async function bookLoop(name: string) {
  const c = SPEC.cases.find((c) => c.name === name)!;
  const model = await GPTModel.create(c.config, { seed: 123, trainable: true });
  const { ref, train, val } = setup(name, model.generator);
  const optimizer = new AdamW(model, { lr: c.lr, weightDecay: c.weightDecay });
  const lines: string[] = [];
  const r = await trainModelSimple(model, train, val, optimizer, {
    numEpochs: c.numEpochs,
    evalFreq: c.evalFreq,
    evalIter: c.evalIter,
    startContext: SPEC.startContext,
    maxNewTokens: c.maxNewTokens,
    print: (l) => lines.push(l),
    onStep: async ({ step }) => {
      if (step === 0) await assertGradients(model, ref.gradients);
    },
  });
  assertLosses(r.stepLosses, ref.losses, "step loss");
  assertLosses(r.trainLosses, ref.evals.map((e) => e.train), "train loss");
  assertLosses(r.valLosses, ref.evals.map((e) => e.val), "val loss");
  assert.deepEqual(r.samples, ref.samples.map((ids) => decode(ids).replaceAll("\n", " ")));
  return { c, ref, r, lines, model };
}

Deno.test("train: the tiny model's losses, evaluations, gradients and samples equal PyTorch's over 3 shuffled epochs", async () => {
  const { c, ref, r, lines, model } = await bookLoop("tiny_shuffled");
  using _ = model;
  assert.deepEqual(r.tokensSeen, ref.evals.map((e) => e.tokensSeen));
  assert.match(lines[0], /^Ep 1 \(Step 000000\): Train loss \d+\.\d{3}, Val loss \d+\.\d{3}$/);
  assert.equal(lines.length, ref.evals.length + c.numEpochs);
});

Deno.test("train: gradient accumulation and clip_grad_norm_ equal PyTorch's", async () => {
  const name = "tiny_ordered_accum_clip";
  const c = SPEC.cases.find((c) => c.name === name)!;
  using model = await GPTModel.create(c.config, { seed: 123, trainable: true });
  const { ref, train, val } = setup(name, model.generator);
  const optimizer = new AdamW(model, { lr: c.lr, weightDecay: c.weightDecay });
  const losses: number[] = [], norms: number[] = [], evals: number[] = [], samples: number[][] = [];
  let step = -1;
  for (let e = 0; e < c.numEpochs; e++) {
    let i = 0;
    for (const [x, y] of train) {
      if (i % c.accumulate! === 0) optimizer.zeroGrad();
      losses.push(await backward(model, x, y));
      if ((++i) % c.accumulate! !== 0) continue;
      if (step === -1) await assertGradients(model, ref.gradients);
      norms.push(await clipGradNorm(model, c.clip!));
      optimizer.step();
      if (++step % c.evalFreq === 0) {
        const { trainLoss, valLoss } = await evaluateModel(model, train, val, c.evalIter);
        evals.push(trainLoss, valLoss);
      }
    }
    samples.push(
      (await generateAndPrintSample(model, SPEC.startContext, { maxNewTokens: c.maxNewTokens, print: () => {} })).ids,
    );
  }
  assertLosses(losses, ref.losses, "batch loss");
  assertLosses(norms, ref.gradNorms!, "gradient norm");
  assertLosses(evals, ref.evals.flatMap((e) => [e.train, e.val]), "evaluation");
  assert.deepEqual(samples, ref.samples);
});

Deno.test("train: the 124M model (context 32) for 4 steps equals PyTorch: losses and first gradients", async () => {
  using _ = (await bookLoop("gpt124m")).model;
});

Deno.test("train: dropout is on in training and off in evaluation, and backward redraws the forward's masks", async () => {
  const cfg = { ...SPEC.cases[0].config, drop_rate: 0.2 };
  using model = await GPTModel.create(cfg, { seed: 7, trainable: true });
  const { train } = setup(SPEC.cases[0].name, model.generator);
  const [x, y] = train[Symbol.iterator]().next().value!;
  const state = trainingOf(model).state;
  // evaluation: no dropout, the same loss every time, and the loss of the inference path
  const e1 = await calcLossBatch(x, y, model);
  assert.equal(await calcLossBatch(x, y, model), e1);
  assert.ok(near(await model.loss(x, y), e1, 1e-5));
  // training: new masks every pass
  const t1 = await backward(model, x, y);
  const t2 = await backward(model, x, y);
  assert.notEqual(t1, t2);
  assert.notEqual(t1, e1);
  // the gradient along a direction equals the loss's central difference under the same masks
  const step = state.dropoutStep;
  await assertDirectional(
    model,
    ["trf_blocks.0.att.W_query.weight", "trf_blocks.1.ff.layers.0.weight", "pos_emb.weight"],
    [x, y],
    step,
  );
  const loss = async (s: number) => {
    state.dropoutStep = s;
    return await backward(model, x, y);
  };
  // a different mask gives a different loss at the same parameters
  assert.notEqual(await loss(step + 1), await loss(step));
});

Deno.test("train: a Hugging Face model with a tied head trains (the embedding and head gradients add up)", async () => {
  using model = await GPTModel.load(`${TESTDATA}tiny_hf_gpt2`, { trainable: true });
  using plain = await GPTModel.load(`${TESTDATA}tiny_hf_gpt2`);
  const ids = [[1, 7, 30, 99, 4, 12, 50, 3], [2, 2, 60, 8, 41, 77, 9, 100]];
  const x = ids.map((r) => r.slice(0, 7)), y = ids.map((r) => r.slice(1));
  assert.deepEqual(await model.forward(x), await plain.forward(x));
  // tok_emb is also the head: its gradient has both parts
  await assertDirectional(model, ["tok_emb.weight", "trf_blocks.2.att.W_value.weight"], [x, y]);
  const opt = new AdamW(model, { lr: 1e-2, weightDecay: 0 });
  const first = await calcLossBatch(x, y, model);
  for (let i = 0; i < 5; i++) {
    opt.zeroGrad();
    await backward(model, x, y);
    opt.step();
  }
  assert.ok(await calcLossBatch(x, y, model) < first - 0.1);
  // generation reads the updated weights
  assert.notDeepEqual(await model.forward(x), await plain.forward(x));
});
