/**
 * One decoding run, for comparing two commits in separate processes: loads `mod.ts` from the
 * path given (a worktree of the other commit, say), creates the seed-123 GPT-2 124M model,
 * warms up with 8 tokens, then prints the tokens per second of 64 greedy tokens from a 4-token
 * prompt. Alternate the two trees:
 *
 *   git worktree add /tmp/before COMMIT
 *   for r in 1 2 3; do for t in /tmp/before .; do
 *     deno run -A --config $t/deno.json bench/decode_once.ts $(realpath $t)/mod.ts f16; done; done
 *
 * @module
 */

const [path, dtype = "f16", n = "64"] = Deno.args;
const mod = await import(new URL(`file://${path}`).href);
const model = await mod.GPTModel.create(mod.GPT_CONFIG_124M, { seed: 123, dtype });
const prompt = [[15496, 11, 314, 716]];
await mod.generate(model, prompt, { maxNewTokens: 8 });
const t = performance.now();
await mod.generate(model, prompt, { maxNewTokens: Number(n) });
console.log((Number(n) / (performance.now() - t) * 1000).toFixed(2));
