import assert from "node:assert/strict";
import { linearBiasBound, linearWeightBound, TorchGenerator } from "../src/weights/torch_random.ts";
import { assertClose, fixture } from "./_helpers.ts";

interface Rng {
  uniform_16: number[];
  uniform_m2_3_8: number[];
  seed0_uniform_8: number[];
  normal_16: number[];
  normal_20: number[];
  normal_mean1_std2_32: number[];
  linear_5_3: { weight: number[]; bias: number[] };
  embedding_6_8_then_linear_8_4_nobias: { embedding: number[]; linear: number[] };
}

const rng = fixture<Rng>("rng.json");

Deno.test("TorchGenerator.uniform() matches torch.manual_seed(123) + uniform_", () => {
  const g = new TorchGenerator(123);
  const a = new Float32Array(16);
  g.uniform(a, 0, 1);
  assertClose(a, rng.uniform_16, 0, 0, "uniform_16");
  const b = new Float32Array(8);
  new TorchGenerator(123).uniform(b, -2, 3);
  assertClose(b, rng.uniform_m2_3_8, 0, 0, "uniform_(-2, 3)");
  const c = new Float32Array(8);
  new TorchGenerator(0).uniform(c, 0, 1);
  assertClose(c, rng.seed0_uniform_8, 0, 0, "seed 0");
});

Deno.test("TorchGenerator.normal() matches normal_ in blocks of 16 with the tail redrawn", () => {
  for (
    const [key, n, mean, std] of [["normal_16", 16, 0, 1], ["normal_20", 20, 0, 1], [
      "normal_mean1_std2_32",
      32,
      1,
      2,
    ]] as const
  ) {
    const a = new Float32Array(n);
    new TorchGenerator(123).normal(a, mean, std);
    assertClose(a, rng[key], 1e-6, 0, key);
  }
});

Deno.test("TorchGenerator reproduces nn.Linear and nn.Embedding initialisation order", () => {
  const g = new TorchGenerator(123);
  const w = new Float32Array(15);
  g.uniform(w, -linearWeightBound(5), linearWeightBound(5));
  const b = new Float32Array(3);
  g.uniform(b, -linearBiasBound(5), linearBiasBound(5));
  assertClose(w, rng.linear_5_3.weight, 1e-6, 0, "linear weight");
  assertClose(b, rng.linear_5_3.bias, 1e-6, 0, "linear bias");

  const g2 = new TorchGenerator(123);
  const e = new Float32Array(48);
  g2.normal(e);
  const l = new Float32Array(32);
  g2.uniform(l, -linearWeightBound(8), linearWeightBound(8));
  assertClose(e, rng.embedding_6_8_then_linear_8_4_nobias.embedding, 1e-6, 0, "embedding");
  assertClose(l, rng.embedding_6_8_then_linear_8_4_nobias.linear, 1e-6, 0, "linear after embedding");
});

Deno.test("TorchGenerator rejects a negative or fractional seed", () => {
  assert.throws(() => new TorchGenerator(-1), RangeError);
  assert.throws(() => new TorchGenerator(1.5), /seed '1.5'/);
});
