/**
 * How late a 10 ms interval timer runs while the model generates in the same process: the worst
 * and median lateness during a decoding call, and the call's speed. GPT-2 124M (seed 123), batch 1.
 *
 *   deno run -A bench/event_loop_lag.ts [f32|f16|q8] [NEW_TOKENS] [BACKEND_JSON]
 *   deno run -A bench/event_loop_lag.ts f16 40 '{"submitSteps":32}'    # 32 steps a submission
 */
import { type BackendOptions, generate, GPT_CONFIG_124M, GPTModel, type WeightDType } from "../mod.ts";

const dtype = (Deno.args[0] ?? "f16") as WeightDType;
const n = Number(Deno.args[1] ?? 40);
const backend = JSON.parse(Deno.args[2] ?? "{}") as BackendOptions;
using model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123, dtype, backend });
// warm up: compile the kernels and build the head screen's copy (its first greedy call of 32 steps or more)
await generate(model, [[15496, 11, 314, 716]], { maxNewTokens: 40 });
const late: number[] = [];
let last = performance.now();
const timer = setInterval(() => {
  const now = performance.now();
  late.push(Math.max(0, now - last - 10));
  last = now;
}, 10);
const t = performance.now();
await generate(model, [[15496, 11, 314, 716]], { maxNewTokens: n });
const ms = performance.now() - t;
clearInterval(timer);
late.sort((a, b) => a - b);
console.log(
  `${model.adapter} · ${dtype} · ${n} new tokens in ${ms.toFixed(0)} ms (${(n / ms * 1000).toFixed(2)} tokens/s) · ` +
    `timer late by ${late.at(-1)?.toFixed(0) ?? "-"} ms at worst, median ${
      late[late.length >> 1]?.toFixed(0) ?? "-"
    } ms ` +
    `(${late.length} ticks; submissions of ${model.backend.submitSteps} steps)`,
);
