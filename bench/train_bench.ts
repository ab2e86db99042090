// deno bench -A bench/ : a training step (zero_grad, loss and gradients, AdamW step) per call;
// tokens per second = batch x context / time. The 124M step over 64 tokens does about 6 x 124M x 64
// = 48 GFLOP of products.
import { AdamW, backward, calcLossBatch, GPT_CONFIG_124M, GPTModel } from "../mod.ts";

const small = {
  vocab_size: 1000,
  context_length: 64,
  emb_dim: 128,
  n_heads: 4,
  n_layers: 2,
  drop_rate: 0.1,
  qkv_bias: false,
};
const batch = (rows: number, T: number, V: number) =>
  Array.from({ length: rows }, (_, b) => Array.from({ length: T + 1 }, (_, i) => (i * 7919 + b * 104729) % V));

async function stepper(model: GPTModel, ids: number[][]) {
  const opt = new AdamW(model, { lr: 4e-4, weightDecay: 0.1 });
  const x = ids.map((r) => r.slice(0, -1)), y = ids.map((r) => r.slice(1));
  const step = async () => {
    opt.zeroGrad();
    await backward(model, x, y);
    opt.step();
    await calcLossBatch([x[0].slice(0, 1)], [y[0].slice(0, 1)], model); // waits for the step
  };
  await step();
  return step;
}

const tiny = await stepper(await GPTModel.create(small, { seed: 1, trainable: true }), batch(4, 64, 1000));
const gpt2 = await stepper(
  await GPTModel.create({ ...GPT_CONFIG_124M, context_length: 64 }, { seed: 123, trainable: true }),
  batch(1, 64, 50257),
);

Deno.bench({
  name: "training step, small model (vocab 1000, emb 128, 2 layers), batch 4 x 64 tokens",
  group: "train",
  baseline: true,
  n: 5,
  warmup: 1,
  fn: tiny,
});
Deno.bench({ name: "training step, 124M f32, batch 1 x 64 tokens", group: "train", n: 3, warmup: 1, fn: gpt2 });
