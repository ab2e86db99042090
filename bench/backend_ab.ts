/**
 * Paired comparison of two backend choices (the experimental `backend` option, JSON): four GPT-2 124M models (seed 123) made A, B, B, A, then rounds in
 * which each model profiles one decoding step at cache position 64 (`timestamp-query`) and
 * decodes N tokens. Prints the medians and the median over rounds of A's time over B's (the two
 * A models against the two B models of the same round, so slow stretches of a shared machine and
 * the order in which the models were made count the same for both), for the step's kernels, the
 * blocks' matrix products alone, the decoding call and `generateTextSimple` on the seed example (6
 * new tokens); and whether all four gave the same ids.
 *
 *   deno run -A bench/backend_ab.ts A B [f32|f16] [ROUNDS] [N]
 *   deno run -A bench/backend_ab.ts '{"xUniform":true}' '{"xUniform":false}' f32
 *   deno run -A bench/backend_ab.ts '{"headScreen":"always"}' '{"headScreen":"never"}' f16
 */
import { type BackendOptions, generate, generateTextSimple, GPT_CONFIG_124M, GPTModel } from "../mod.ts";
import { profileStep } from "../src/model/_profile.ts";

const [a, b] = Deno.args;
if (a === undefined || b === undefined) {
  console.error("usage: deno run -A bench/backend_ab.ts BACKEND_JSON_A BACKEND_JSON_B [f32|f16] [ROUNDS] [N]");
  Deno.exit(2);
}
const dtype = (Deno.args[2] ?? "f32") as "f32" | "f16";
const rounds = Number(Deno.args[3] ?? 12);
const n = Number(Deno.args[4] ?? 40);
const prompt = [[15496, 11, 314, 716]];

async function make(value: string): Promise<GPTModel> {
  const backend = JSON.parse(value) as BackendOptions;
  const m = await GPTModel.create(GPT_CONFIG_124M, { seed: 123, dtype, backend });
  await generate(m, prompt, { maxNewTokens: 40 }); // compile, build the screened head
  await profileStep(m, 1, 1, 64);
  return m;
}

const models = [await make(a), await make(b), await make(b), await make(a)];
const isA = [true, false, false, true];
type Sample = { step: number; blocks: number; call: number; simple: number };
const samples: Sample[][] = models.map(() => []);
const ids = new Set<string>();
for (let r = 0; r < rounds; r++) {
  const order = r % 2 ? [3, 2, 1, 0] : [0, 1, 2, 3];
  for (const i of order) {
    const { kernels } = await profileStep(models[i], 1, 1, 64);
    const step = Object.values(kernels).reduce((s, v) => s + v, 0);
    const blocks = Object.entries(kernels)
      .filter(([k]) => k.startsWith("matmul") && !k.includes("head"))
      .reduce((s, [, v]) => s + v, 0);
    let t = performance.now();
    ids.add(JSON.stringify(await generate(models[i], prompt, { maxNewTokens: n })));
    const call = performance.now() - t;
    t = performance.now();
    ids.add(JSON.stringify(await generateTextSimple(models[i], prompt, 6, GPT_CONFIG_124M.context_length)));
    samples[i].push({ step, blocks, call, simple: performance.now() - t });
  }
}
for (const m of models) m.destroy();

const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[xs.length >> 1];
const side = (wantA: boolean, key: keyof Sample, r: number) =>
  samples.reduce((s, xs, i) => s + (isA[i] === wantA ? xs[r][key] : 0), 0) / 2;
const row = (label: string, key: keyof Sample, unit: (ms: number) => string) => {
  const ra = [...Array(rounds).keys()].map((r) => side(true, key, r));
  const rb = [...Array(rounds).keys()].map((r) => side(false, key, r));
  const ratio = median(ra.map((v, r) => v / rb[r]));
  return `| ${label} | ${unit(median(ra))} | ${unit(median(rb))} | ${ratio.toFixed(3)} |`;
};
console.log(
  `# ${models[0].adapter} · ${dtype} · backend A=${a}, B=${b} · ${rounds} rounds · ` +
    `${ids.size === 2 ? "the same ids from all four models" : "DIFFERENT ids"}`,
);
console.log("| measure | A | B | A / B (median of rounds) |");
console.log("| --- | --- | --- | --- |");
console.log(row("decoding step, all kernels (position 64)", "step", (ms) => `${ms.toFixed(1)} ms`));
console.log(row("the blocks' matrix products", "blocks", (ms) => `${ms.toFixed(1)} ms`));
console.log(row(`decoding ${n} tokens`, "call", (ms) => `${(n / ms * 1000).toFixed(2)} tokens/s`));
console.log(
  row("generateTextSimple, seed example (6 new)", "simple", (ms) => `${(6 / ms * 1000).toFixed(2)} tokens/s`),
);
if (ids.size !== 2) Deno.exit(1);
