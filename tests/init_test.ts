import assert from "node:assert/strict";
import { GPT_CONFIG_124M, validateConfig } from "../src/weights/config.ts";
import { TorchGenerator } from "../src/weights/torch_random.ts";
import { Float32Pool, seededParameters, seededParametersAsync } from "../src/weights/init.ts";
import { fixture } from "./_helpers.ts";

interface ParamSummary {
  name: string;
  shape: number[];
  first: number[];
  last: number[];
  sum: number;
  abs_sum: number;
}

Deno.test("seededParameters() draws the seed-123 124M model exactly as PyTorch", () => {
  const ref = fixture<{ parameters: ParamSummary[] }>("gpt124m_seed123.json").parameters;
  // the vocabulary-sized tensors come in pieces of rows: sum them up
  const got: { name: string; shape: number[]; first: number[]; last: number[]; sum: number; abs: number }[] = [];
  for (const t of seededParameters(validateConfig(GPT_CONFIG_124M), 123)) {
    let sum = 0, abs = 0;
    for (const v of t.data) {
      sum += v;
      abs += Math.abs(v);
    }
    const prev = got.at(-1);
    if (t.row0 && prev?.name === t.name) {
      prev.sum += sum;
      prev.abs += abs;
      prev.last = [...t.data.subarray(-4)];
      continue;
    }
    assert.ok(!t.row0, `${t.name} starts at row 0`);
    got.push({
      name: t.name,
      shape: t.shape,
      first: [...t.data.subarray(0, 4)],
      last: [...t.data.subarray(-4)],
      sum,
      abs,
    });
  }
  const byName = new Map(got.map((g) => [g.name, g]));
  assert.equal(byName.size, ref.length, "parameter count");
  // creation order of the drawn parameters matches (LayerNorms draw nothing)
  const drawn = (n: string) => !/norm/.test(n);
  assert.deepEqual(got.map((g) => g.name).filter(drawn), ref.map((r) => r.name).filter(drawn));
  for (const r of ref) {
    const g = byName.get(r.name)!;
    assert.ok(g, `missing ${r.name}`);
    assert.deepEqual(g.shape, r.shape, r.name);
    for (let i = 0; i < 4; i++) {
      assert.ok(Math.abs(g.first[i] - r.first[i]) <= 1e-5, `${r.name} first[${i}] ${g.first[i]} != ${r.first[i]}`);
      assert.ok(Math.abs(g.last[i] - r.last[i]) <= 1e-5, `${r.name} last[${i}] ${g.last[i]} != ${r.last[i]}`);
    }
    const tol = 1e-4 * Math.max(Math.abs(r.sum), 1e-3 * r.abs_sum, 1);
    assert.ok(Math.abs(g.sum - r.sum) <= tol, `${r.name} sum ${g.sum} != ${r.sum}`);
    assert.ok(Math.abs(g.abs - r.abs_sum) <= 1e-4 * r.abs_sum, `${r.name} abs sum ${g.abs} != ${r.abs_sum}`);
  }
});

Deno.test("seededParameters() gives the same values in reused, dirty arrays", () => {
  const cfg = validateConfig({
    ...GPT_CONFIG_124M,
    vocab_size: 1100,
    context_length: 40,
    emb_dim: 32,
    n_heads: 4,
    n_layers: 2,
  });
  const fresh = [...seededParameters(cfg, 7)].map((t) => ({ name: t.name, row0: t.row0, data: t.data.slice() }));
  // every array handed back is filled with NaN and reused for the next tensor of its length
  const pool = new Float32Pool();
  let reused = 0;
  const take = (n: number) => {
    const a = pool.take(n);
    if (Number.isNaN(a[0])) reused++;
    return a;
  };
  const again = [];
  for (const t of seededParameters(cfg, 7, take)) {
    again.push({ name: t.name, row0: t.row0, data: t.data.slice() });
    pool.give(t.data.fill(NaN));
  }
  assert.ok(reused > 10, `only ${reused} arrays were reused`);
  assert.deepEqual(again.map((t) => [t.name, t.row0]), fresh.map((t) => [t.name, t.row0]));
  for (const [i, t] of again.entries()) assert.deepEqual(t.data, fresh[i].data, t.name);
});

Deno.test("seededParametersAsync() draws on two workers with the same values, each tensor's pieces in order", async () => {
  const cfg = validateConfig({
    ...GPT_CONFIG_124M,
    vocab_size: 3000,
    context_length: 40,
    emb_dim: 32,
    n_heads: 4,
    n_layers: 3,
  });
  const fresh = new Map([...seededParameters(cfg, 11)].map((t) => [`${t.name}@${t.row0 ?? 0}`, t]));
  for (const workers of [1, 2]) {
    const seen: string[] = [];
    for await (const t of seededParametersAsync(cfg, 11, workers)) {
      const key = `${t.name}@${t.row0 ?? 0}`;
      const want = fresh.get(key);
      assert.ok(want, `unexpected ${key}`);
      assert.deepEqual(t.data, want.data, `${key} with ${workers} worker(s)`);
      assert.equal(typeof t.release, "function");
      t.release!();
      assert.equal(t.data.length, 0, "a released array is handed back (detached here)");
      seen.push(key);
    }
    assert.deepEqual([...seen].sort(), [...fresh.keys()].sort());
    const pieces = seen.filter((k) => k.startsWith("tok_emb"));
    assert.deepEqual(pieces, [...pieces].sort((a, b) => Number(a.split("@")[1]) - Number(b.split("@")[1])));
  }
});

Deno.test("seededParameters() draws the rest alone, after skipping the embeddings' draws, as in one run", () => {
  for (const vocab of [3000, 3001]) { // whole pieces, and a table drawn whole with its tail redrawn
    const cfg = validateConfig({
      ...GPT_CONFIG_124M,
      vocab_size: vocab,
      context_length: 7,
      emb_dim: 12,
      n_heads: 2,
      n_layers: 2,
    });
    const all = [...seededParameters(cfg, 5)];
    const emb = [...seededParameters(cfg, 5, undefined, "embeddings")];
    const rest = [...seededParameters(cfg, 5, undefined, "rest")];
    assert.deepEqual([...emb, ...rest].map((t) => [t.name, t.row0]), all.map((t) => [t.name, t.row0]));
    for (const [i, t] of [...emb, ...rest].entries()) {
      assert.deepEqual(t.data, all[i].data, `${t.name} (vocab ${vocab})`);
    }
  }
  const tiny = validateConfig({
    ...GPT_CONFIG_124M,
    vocab_size: 3,
    context_length: 2,
    emb_dim: 4,
    n_heads: 1,
    n_layers: 1,
  });
  assert.throws(() => [...seededParameters(tiny, 5, undefined, "rest")], /draws vary/);
});

Deno.test("TorchGenerator.skip(n) leaves it where n draws would", () => {
  for (const n of [0, 1, 623, 624, 625, 5000]) {
    const a = new TorchGenerator(9);
    for (let i = 0; i < n; i++) a.nextUint32();
    const b = new TorchGenerator(9);
    b.skip(n);
    const x = new Float32Array(700), y = new Float32Array(700);
    a.uniform(x, 0, 1);
    b.uniform(y, 0, 1);
    assert.deepEqual(y, x, `skip(${n})`);
  }
  assert.throws(() => new TorchGenerator(1).skip(-1), /count '-1'/);
});
