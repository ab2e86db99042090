// Every kernel's params struct is declared once in TypeScript, in WGSL order, and must match the
// struct in every variant of the kernel's WGSL: the same fields, in order, with the same types.
import assert from "node:assert/strict";
import * as K from "../kernels/mod.ts";
import type { ParamsLayout } from "../kernels/mod.ts";

/** Each layout and the kernels that declare its struct. */
const CASES: [ParamsLayout, K.KernelSpec[]][] = [
  [K.EMBEDDING_PARAMS, [K.EMBEDDING, K.EMBEDDING_F16, K.EMBEDDING_Q8]],
  [K.LAYER_NORM_PARAMS, [K.LAYER_NORM, K.LAYER_NORM_SERIAL]],
  [K.MATMUL_PARAMS, [K.MATMUL, K.MATMUL_F16]],
  [K.ATTENTION_PARAMS, [K.ATTENTION, K.ATTENTION_SERIAL, K.ATTENTION_BLOCK]],
  [K.ARGMAX_PARAMS, [K.ARGMAX_PART, K.ARGMAX_FINAL, K.ARGMAX_SERIAL]],
  [K.LOGPROBS_PARAMS, [K.LOGPROBS]],
  [K.LOSS_PARAMS, [K.CROSS_ENTROPY, K.KL_DIVERGENCE]],
  [K.SAMPLE_PARAMS, [K.SAMPLE]],
];

/** The fields of `struct name` in WGSL, with their types. */
function wgslFields(code: string, name: string): [string, string][] {
  const body = new RegExp(`struct ${name} \\{([^}]*)\\}`).exec(code)?.[1];
  assert.ok(body, `struct ${name}`);
  return [...body.replace(/\/\/.*$/gm, "").matchAll(/(\w+)\s*:\s*(\w+)/g)].map((m) => [m[1], m[2]]);
}

Deno.test("kernel params: each TypeScript layout is its WGSL struct, field for field, in every variant", () => {
  for (const [layout, specs] of CASES) {
    for (const spec of specs) {
      const got = wgslFields(spec.code, layout.struct);
      const want = layout.fields.map((f) => [f, layout.floats?.includes(f) ? "f32" : "u32"]);
      assert.deepEqual(got, want, `${spec.name}: ${layout.struct}`);
    }
  }
  const head = Object.values(K).filter((v): v is K.KernelSpec =>
    typeof v === "object" && v !== null && "code" in v && /struct HeadParams/.test((v as K.KernelSpec).code)
  );
  assert.ok(head.length > 0);
  for (const spec of head) {
    assert.deepEqual(wgslFields(spec.code, "HeadParams").map(([f]) => f), [...K.HEAD_PARAMS.fields], spec.name);
  }
});

Deno.test("kernel params: encodeParams puts each value in its field's word and refuses missing or unknown fields", () => {
  const w = K.encodeParams(K.ATTENTION_PARAMS, { C: 768, H: 12, hd: 64, cap: 1024, scale: 0.125 });
  assert.deepEqual([...w.subarray(0, 4)], [768, 12, 64, 1024]);
  assert.equal(new Float32Array(w.buffer)[4], 0.125);
  assert.deepEqual([...w.subarray(5)], [0, 0, 0]);
  assert.throws(() => K.encodeParams(K.ATTENTION_PARAMS, { C: 1, H: 1, hd: 1, cap: 1 }), /scale needs a value/);
  assert.throws(() => K.encodeParams(K.LOSS_PARAMS, { V: 1, ldl: 1, rows: 1, cols: 2 }), /no field 'cols'/);
});
