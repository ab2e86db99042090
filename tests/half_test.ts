// The half-float converter that stands in for Float16Array (Node 20 has none) rounds exactly as it.
import assert from "node:assert/strict";
import { halfBits, halfValue, readHalves, writeHalves } from "../src/platform/half.ts";
import { TorchGenerator } from "../src/weights/torch_random.ts";

Deno.test("halfBits() and halfValue() agree with Float16Array on every half, the ties between them and random floats", () => {
  // every 16-bit pattern, and the float32 halfway points between neighbours (ties go to even)
  const all = new Uint16Array(65536).map((_, i) => i);
  const values = new Float16Array(all.buffer);
  const probes: number[] = [];
  for (let i = 0; i < 65536; i++) {
    const v = values[i];
    probes.push(v);
    const next = values[(i + 1) & 0xffff];
    if (Number.isFinite(v) && Number.isFinite(next) && Math.sign(v) === Math.sign(next)) {
      const mid = (v + next) / 2;
      probes.push(mid, Math.fround(mid * (1 + 2 ** -20)), Math.fround(mid * (1 - 2 ** -20)));
    }
  }
  const u = new Float32Array(200_000);
  new TorchGenerator(3).uniform(u, -1, 1);
  for (let i = 0; i < u.length; i += 2) probes.push(Math.fround(u[i] * 2 ** (u[i + 1] * 30)));
  probes.push(65520, 65519.99, 1e9, -1e9, 2 ** -25, 2 ** -26, 3 * 2 ** -26, Infinity, -Infinity, -0, 0);
  const native = new Uint16Array(Float16Array.from(probes).buffer);
  const ours = new Uint16Array(probes.length);
  writeHalves(probes, ours, false);
  const bad = probes.filter((p, i) => !Number.isNaN(p) && native[i] !== ours[i]);
  assert.deepEqual(bad.slice(0, 5), [], `${bad.length} values rounded differently`);
  assert.equal(halfBits(NaN) & 0x7e00, 0x7e00);
  const back = readHalves(all, false);
  for (let i = 0; i < 65536; i++) {
    if (Number.isNaN(values[i])) assert.ok(Number.isNaN(back[i]));
    else assert.ok(Object.is(back[i], values[i]), `pattern ${i.toString(16)}: ${back[i]} vs ${values[i]}`);
  }
  assert.equal(halfValue(0x3c00), 1);
});
