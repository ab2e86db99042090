import assert from "node:assert/strict";
import { GPT_CONFIG_124M, validateConfig } from "../src/config.ts";
import { seededParameters } from "../src/init.ts";
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
