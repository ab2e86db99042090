/**
 * Side-by-side speed of this project and PyTorch (the book's GPTModel, bench/torch_reference.py)
 * on this machine, in one run: GPT-2 124M (seed 123), batch 1, greedy.
 *
 *   deno task bench:compare            # or: deno run -A bench/compare.ts [--reps N] [--quick]
 *
 * `--python PATH` picks the Python that has PyTorch; `--torch-device cuda` runs PyTorch on an
 * NVIDIA GPU (to compare with this project on the same GPU).
 *
 * PyTorch is skipped with a message when `python3 -c "import torch"` fails
 * (Debian: apt-get install python3-torch libopenblas0-pthread).
 */
import { parseArgs } from "node:util";
import { generate, generateTextSimple, GPT_CONFIG_124M, GPTModel } from "../mod.ts";

const { values } = parseArgs({
  options: {
    reps: { type: "string" },
    quick: { type: "boolean" },
    python: { type: "string" },
    "torch-device": { type: "string" },
  },
});
const REPS = Number(values.reps ?? 3);
const QUICK = Boolean(values.quick);
const PY = values.python ?? "/usr/bin/python3";
const TORCH_DEVICE = values["torch-device"] ?? "cpu";
if (!/^(cpu|cuda(:\d+)?)$/.test(TORCH_DEVICE)) {
  throw new TypeError(
    `--torch-device must be cpu or cuda, not "${TORCH_DEVICE}": pass --torch-device cuda or leave it out`,
  );
}
const DECODE = QUICK ? 32 : 128;
const PREFILL = QUICK ? 128 : 512;
const threads = String(navigator.hardwareConcurrency);
const here = new URL(".", import.meta.url).pathname;
const root = new URL("..", import.meta.url).pathname;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function timeIt(fn: () => Promise<unknown>, reps: number): Promise<number> {
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await fn();
    ts.push((performance.now() - t) / 1000);
  }
  return median(ts);
}

/** Wall seconds and peak RSS (MiB, from /usr/bin/time when present) of a command, median of `reps`. */
async function processCost(cmd: string[], env: Record<string, string>, reps: number) {
  const hasTime = await Deno.stat("/usr/bin/time").then(() => true, () => false);
  const walls: number[] = [];
  const rss: number[] = [];
  for (let i = 0; i < reps; i++) {
    const args = hasTime ? ["-f", "%e %M", ...cmd] : cmd.slice(1);
    const t = performance.now();
    const out = await new Deno.Command(hasTime ? "/usr/bin/time" : cmd[0], {
      args,
      env,
      stdout: "null",
      stderr: "piped",
    })
      .output();
    walls.push((performance.now() - t) / 1000);
    if (!out.success) throw new Error(`${cmd.join(" ")} failed: ${new TextDecoder().decode(out.stderr).slice(-500)}`);
    const m = /(\d+\.\d+) (\d+)\s*$/.exec(new TextDecoder().decode(out.stderr));
    if (m) rss.push(Number(m[2]) / 1024);
  }
  return { wall: median(walls), rss: rss.length ? median(rss) : NaN };
}

const prompt = [[15496, 11, 314, 716]];
const long = [Array.from({ length: PREFILL }, (_, i) => (i * 7919) % 50257)];
const ours: Record<string, number> = {};
let adapter = "";
for (const dtype of ["f32", "f16", "q8"] as const) {
  using model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123, dtype });
  adapter = model.adapter;
  await generateTextSimple(model, prompt, 6, 1024); // compile and warm up
  await generate(model, prompt, { maxNewTokens: 2 });
  ours[`simple_${dtype}`] = 6 / await timeIt(() => generateTextSimple(model, prompt, 6, 1024), REPS);
  ours[`decode_${dtype}`] = DECODE / await timeIt(() => generate(model, prompt, { maxNewTokens: DECODE }), REPS);
  await model.forward([long[0].slice(0, 8)]);
  ours[`prefill_${dtype}`] = PREFILL / await timeIt(() => model.forward(long), Math.max(1, Math.min(REPS, 2)));
}
const env = {
  ...Deno.env.toObject(),
  OMP_NUM_THREADS: threads,
  XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp",
  TORCH_DEVICE,
};
const cliOurs = await processCost([Deno.execPath(), "run", "-A", `${root}mod.ts`, "Hello, I am"], env, REPS);

let torch: Record<string, number> | undefined;
let cliTorch: { wall: number; rss: number } | undefined;
let torchNote = "";
const probe = await new Deno.Command(PY, { args: ["-c", "import torch"], stdout: "null", stderr: "null" }).output()
  .catch(() => ({ success: false }));
if (probe.success) {
  const out = await new Deno.Command(PY, {
    args: [`${here}torch_reference.py`, "bench", String(REPS), String(DECODE), String(PREFILL)],
    env,
    stdout: "piped",
  }).output();
  torch = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
  cliTorch = await processCost([PY, `${here}torch_reference.py`, "seed"], env, REPS);
  torchNote = `PyTorch ${torch!.torch} on ${torch!.device}, ${torch!.threads} threads`;
} else {
  torchNote =
    `PyTorch not found (${PY} -c "import torch" failed): install python3-torch and libopenblas0-pthread to compare`;
}

const f = (x: number | undefined, d = 2) => x === undefined || Number.isNaN(x) ? "-" : x.toFixed(d);
const ratio = (a: number, b: number | undefined, higherIsBetter = true) =>
  b === undefined || Number.isNaN(b) ? "-" : `${(higherIsBetter ? a / b : b / a).toFixed(2)}x`;
const rows: string[][] = [
  [
    "metric",
    "this project f32",
    "this project f16",
    "this project q8",
    "PyTorch",
    "f32 / PyTorch",
    "f16 / PyTorch",
    "q8 / PyTorch",
  ],
];
const add = (name: string, key: string, tkey: string) =>
  rows.push([
    name,
    f(ours[`${key}_f32`]),
    f(ours[`${key}_f16`]),
    f(ours[`${key}_q8`]),
    f(torch?.[tkey]),
    ratio(ours[`${key}_f32`], torch?.[tkey]),
    ratio(ours[`${key}_f16`], torch?.[tkey]),
    ratio(ours[`${key}_q8`], torch?.[tkey]),
  ]);
add(`decode tokens/s, key/value cache (4-token prompt, ${DECODE} new)`, "decode", "decode_tok_s");
add("generateTextSimple tokens/s (seed example, 6 new)", "simple", "simple_tok_s");
add(`prefill tokens/s (${PREFILL}-token prompt)`, "prefill", "prefill_tok_s");
rows.push([
  "CLI process, seed example: wall s",
  f(cliOurs.wall),
  "",
  "",
  f(cliTorch?.wall),
  cliTorch ? ratio(cliOurs.wall, cliTorch.wall, false) : "-",
  "",
  "",
]);
rows.push([
  "CLI process, seed example: peak RSS MiB",
  f(cliOurs.rss, 0),
  "",
  "",
  f(cliTorch?.rss, 0),
  cliTorch ? ratio(cliOurs.rss, cliTorch.rss, false) : "-",
  "",
  "",
]);
console.log(`# ${new Date().toISOString().slice(0, 10)} · adapter: ${adapter} · ${threads} CPU threads · ${torchNote}`);
console.log(
  `# medians of ${REPS} runs; ratios above 1 favour this project (for wall time and memory: PyTorch's / ours)`,
);
for (const [i, r] of rows.entries()) {
  console.log(`| ${r.join(" | ")} |`);
  if (i === 0) console.log(`|${r.map(() => " --- ").join("|")}|`);
}
