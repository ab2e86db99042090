// The `Step` uniform's layout is declared once in TypeScript (kernels/step.ts) and must match the
// WGSL struct the kernels read, field for field and byte for byte.
import assert from "node:assert/strict";
import {
  encodeRow,
  encodeStep,
  ROW_BYTES,
  ROW_FIELDS,
  STEP_BYTES,
  STEP_FIELDS,
  STEP_UNIFORM_BYTES,
} from "../kernels/mod.ts";
import { MAX_RAGGED_ROWS, STEP_WGSL } from "../kernels/step.ts";

/** The fields of a WGSL struct, in order. */
function fields(name: string): string[] {
  const body = new RegExp(`struct ${name} \\{([^}]*)\\}`).exec(STEP_WGSL)?.[1];
  assert.ok(body, `struct ${name} in STEP_WGSL`);
  return body.split("\n").map((l) => /^\s*(\w+):/.exec(l)?.[1]).filter((f): f is string => f !== undefined);
}

Deno.test("Step: the TypeScript layout is the WGSL struct's, field for field and byte for byte", () => {
  assert.deepEqual([...fields("Step")], [...STEP_FIELDS, "row"]);
  assert.deepEqual(fields("Row"), [...ROW_FIELDS]);
  assert.equal(STEP_BYTES, 4 * STEP_FIELDS.length);
  assert.equal(ROW_BYTES, 4 * ROW_FIELDS.length);
  assert.equal(STEP_UNIFORM_BYTES, STEP_BYTES + MAX_RAGGED_ROWS * ROW_BYTES);
  // every Row field is 4 bytes (u32 or f32), so the struct has no hidden padding
  assert.ok(/struct Row \{[^}]*\}/.exec(STEP_WGSL)![0].split("\n").slice(1, -1).every((l) => /: (u32|f32),/.test(l)));
});

Deno.test("Step: encodeStep and encodeRow put each value in its field's word", () => {
  const buf = new ArrayBuffer(2 * STEP_UNIFORM_BYTES);
  const at = STEP_UNIFORM_BYTES;
  encodeStep({ batch: 3, T: 5, start: 7, pos0: 9, L: 11, index: 13, ragged: true }, buf, at);
  const head = new Uint32Array(buf, at, STEP_FIELDS.length);
  const want: Record<string, number> = { batch: 3, T: 5, rows: 15, start: 7, pos0: 9, L: 11, index: 13, ragged: 1 };
  STEP_FIELDS.forEach((f, i) => assert.equal(head[i], want[f], f));
  encodeRow(
    { slot: 2, start: 4, pos0: 6, index: 8, seed: 2 ** 32 - 1, draw: 10, topK: 12, temperature: 0.5, topP: 0.25 },
    buf,
    at,
    1,
  );
  const o = at + STEP_BYTES + ROW_BYTES;
  const u = new Uint32Array(buf, o, ROW_FIELDS.length);
  const f = new Float32Array(buf, o, ROW_FIELDS.length);
  const row: Record<string, number> = { slot: 2, start: 4, pos0: 6, index: 8, seed: 2 ** 32 - 1, draw: 10, topk: 12 };
  ROW_FIELDS.forEach((name, i) => {
    if (name === "temp") assert.equal(f[i], 0.5);
    else if (name === "topp") assert.equal(f[i], 0.25);
    else assert.equal(u[i], row[name] ?? 0, name);
  });
  // the first step and the first row are untouched
  assert.ok(new Uint32Array(buf, 0, at / 4).every((x) => x === 0));
  assert.ok(new Uint32Array(buf, at + STEP_BYTES, ROW_BYTES / 4).every((x) => x === 0));
});
