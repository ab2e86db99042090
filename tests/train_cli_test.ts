// `mod.ts train` as a user runs it, and checkpoints: model.save() read back by GPTModel.load and by
// PyTorch's load_state_dict (where PyTorch is installed), Ctrl-C, a diverging loss, bad data.
import assert from "node:assert/strict";
import { main } from "../src/cli/cli.ts";
import { GPTModel } from "../src/model/model.ts";
import { trainingOf } from "../src/model/_trainable.ts";
import { AdamW } from "../src/train/optimizer.ts";
import { createDataloaderV1 } from "../src/train/dataloader.ts";
import { backward, TrainingDivergedError, trainModelSimple } from "../src/train/train.ts";
import { assertClose, TESTDATA } from "./_helpers.ts";

const TEXT = TESTDATA + "train_text.txt";
const TINY = ["--emb-dim", "32", "--n-layers", "2", "--n-heads", "2", "--context", "32"];
const CFG = {
  vocab_size: 50257,
  context_length: 32,
  emb_dim: 32,
  n_heads: 2,
  n_layers: 2,
  drop_rate: 0,
  qkv_bias: false,
};

async function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, (s) => out.push(s), (s) => err.push(s));
  return { code, out: out.join("\n"), err: err.join("\n") };
}

/** A Python that has PyTorch (Debian's python3-torch is in /usr/bin's), or undefined. */
const TORCH_PYTHON = ["python3", "/usr/bin/python3"].find((py) => {
  try {
    return new Deno.Command(py, { args: ["-c", "import torch"], stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
});

Deno.test("train CLI: prints the book's lines, writes the plot and a checkpoint that loads back to the same logits", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await run([
      "train",
      "--data",
      TEXT,
      ...TINY,
      "--epochs",
      "2",
      "--lr",
      "0.001",
      "--out",
      `${dir}/m.safetensors`,
      "--plot",
      `${dir}/losses.svg`,
    ]);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.split("\n");
    assert.match(lines[0], /^Ep 1 \(Step 000000\): Train loss \d+\.\d{3}, Val loss \d+\.\d{3}$/);
    const evals = lines.filter((l) => l.startsWith("Ep "));
    assert.ok(evals.some((l) => l.startsWith("Ep 2 ")), r.out);
    assert.equal(lines.filter((l) => l.startsWith("Every effort moves you")).length, 2, r.out);
    const svg = await Deno.readTextFile(`${dir}/losses.svg`);
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.equal(svg.match(/<polyline /g)?.length, 2);
    assert.match(svg, /Tokens seen/);
    // the checkpoint: the book's names, and the same logits through GPTModel.load
    using loaded = await GPTModel.load(`${dir}/m.safetensors`);
    assert.deepEqual(loaded.config, { ...loaded.config, ...CFG, drop_rate: 0.1 });
    const ids = [6109, 3626, 6100, 345, 262];
    const logits = await loaded.forward([ids]);
    if (TORCH_PYTHON) {
      const py = new Deno.Command(TORCH_PYTHON, {
        args: [TESTDATA + "load_checkpoint.py", `${dir}/m.safetensors`, ids.join(",")],
      }).outputSync();
      assert.ok(py.success, new TextDecoder().decode(py.stderr));
      const ref = JSON.parse(new TextDecoder().decode(py.stdout));
      assert.deepEqual(ref.shape, [1, ids.length, 50257]);
      assertClose(logits, ref.logits, 1e-4, 1e-4, "PyTorch's logits of the checkpoint");
    } else console.log("python3 with torch not found: the PyTorch half of this test did not run");
    assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort(), [
      "losses.svg",
      "m.safetensors",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("model.save: a trained model's checkpoint loads to identical logits, and keeps training where it stopped", async () => {
  const dir = await Deno.makeTempDir();
  try {
    using model = await GPTModel.create({ ...CFG, qkv_bias: true }, { seed: 5, trainable: true });
    const loader = createDataloaderV1(await Deno.readTextFile(TEXT), { batchSize: 2, maxLength: 32, stride: 32 });
    const opt = new AdamW(model, { lr: 1e-3 });
    let i = 0;
    for (const [x, y] of loader) {
      opt.zeroGrad();
      await backward(model, x, y);
      opt.step();
      if (++i === 3) break;
    }
    await model.save(`${dir}/a.safetensors`);
    using back = await GPTModel.load(`${dir}/a.safetensors`, { trainable: true });
    const ids = [[15496, 11, 314, 716, 257, 1332]];
    assert.deepEqual(await back.forward(ids), await model.forward(ids));
    assert.deepEqual(back.config, model.config);
    assert.ok(back.trainable);
    // saving again over the file replaces it whole, with no file left beside it
    await back.save(`${dir}/a.safetensors`);
    assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name), ["a.safetensors"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train: a NaN loss stops training with an error naming the step; untrainable models refuse", async () => {
  using model = await GPTModel.create(CFG, { seed: 1, trainable: true });
  const loader = createDataloaderV1(await Deno.readTextFile(TEXT), { batchSize: 2, maxLength: 32, stride: 32 });
  const opt = new AdamW(model, { lr: 1e-3 });
  const state = trainingOf(model).state;
  state.params.write({ name: "final_norm.scale", shape: [32], data: new Float32Array(32).fill(NaN) });
  await assert.rejects(
    trainModelSimple(model, loader, loader, opt, {
      numEpochs: 1,
      evalFreq: 5,
      evalIter: 1,
      startContext: "Hi",
      print: () => {},
    }),
    (e: Error) => e instanceof TrainingDivergedError && /step 0 \(epoch 1\): the loss is NaN/.test(e.message),
  );
  const bad = { numEpochs: 1, evalFreq: 0, evalIter: 1, startContext: "Hi", print: () => {} };
  await assert.rejects(
    trainModelSimple(model, loader, loader, opt, bad),
    /evalFreq '0' must be an integer of at least 1/,
  );
  using plain = await GPTModel.create(CFG, { seed: 1 });
  assert.throws(() => new AdamW(plain), /made without \{ trainable: true \}/);
  await assert.rejects(plain.save("/tmp/never.safetensors"), /made without \{ trainable: true \}/);
  await assert.rejects(GPTModel.create(CFG, { trainable: true, dtype: "f16" }), /training needs "f32"/);
  assert.throws(() => new AdamW(model), /already has one/);
});

Deno.test("train CLI: usage errors for missing, empty and too-short data and bad options", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/empty.txt`, "");
    await Deno.writeTextFile(`${dir}/short.txt`, "Every effort moves you forward, and every step counts.");
    const cases: [string[], RegExp][] = [
      [[], /--data FILE is required/],
      [["--data", `${dir}/none.txt`], /cannot read --data '.*none.txt': no such file/],
      [["--data", `${dir}/empty.txt`, ...TINY], /is too short: its training \(the first 90%\) part has no window/],
      [["--data", `${dir}/short.txt`, ...TINY], /is too short/],
      [["--data", TEXT, "--epochs", "0"], /--epochs '0' must be an integer of at least 1/],
      [["--data", TEXT, "--weights", "x", "--emb-dim", "8"], /leave them out with --weights/],
    ];
    for (const [args, want] of cases) {
      const r = await run(["train", ...args]);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
      assert.match(r.err, want);
      assert.match(r.err, /Usage: deno run -A mod.ts train --data FILE/);
    }
    assert.match((await run(["train", "--help"])).out, /--drop-rate X/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train CLI: Ctrl-C stops at a step boundary, saves with --out and exits 130", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../mod.ts", import.meta.url).pathname,
        "train",
        "--data",
        TEXT,
        ...TINY,
        "--epochs",
        "1000",
        "--out",
        `${dir}/m.safetensors`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!seen.includes("Step 000005")) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
    child.kill("SIGINT");
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const [status, err] = await Promise.all([child.status, new Response(child.stderr).text()]);
    clearTimeout(timer);
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    assert.equal(status.code, 130, err);
    assert.match(err, /saved .*m\.safetensors \(step \d+\)/);
    assert.match(err, /interrupted after step \d+/);
    using m = await GPTModel.load(`${dir}/m.safetensors`);
    assert.equal(m.config.emb_dim, 32);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("AdamW.save/load with model.save: training resumes exactly where it stopped", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const text = await Deno.readTextFile(TEXT);
    const batches = [...createDataloaderV1(text, { batchSize: 2, maxLength: 32, stride: 32, shuffle: false })].slice(
      0,
      4,
    );
    const run = async (model: GPTModel, opt: AdamW, from: number, to: number) => {
      const out: number[] = [];
      for (const [x, y] of batches.slice(from, to)) {
        opt.zeroGrad();
        out.push(await backward(model, x, y));
        opt.step();
      }
      return out;
    };
    using a = await GPTModel.create(CFG, { seed: 9, trainable: true });
    const optA = new AdamW(a, { lr: 3e-3, weightDecay: 0.05 });
    await run(a, optA, 0, 2);
    await a.save(`${dir}/m.safetensors`);
    await optA.save(`${dir}/opt.safetensors`);
    const straight = await run(a, optA, 2, 4);
    using b = await GPTModel.load(`${dir}/m.safetensors`, { trainable: true });
    const optB = new AdamW(b); // settings come from the file
    await optB.load(`${dir}/opt.safetensors`);
    assert.equal(optB.lr, 3e-3);
    assert.equal(optB.weightDecay, 0.05);
    assert.deepEqual(await run(b, optB, 2, 4), straight);
    // without the optimizer's state the same steps differ (the moments and the bias correction restart)
    using c = await GPTModel.load(`${dir}/m.safetensors`, { trainable: true });
    assert.notDeepEqual(await run(c, new AdamW(c, { lr: 3e-3, weightDecay: 0.05 }), 2, 4), straight);
    await assert.rejects(optB.load(`${dir}/m.safetensors`), /is not one \(save it with optimizer.save\)/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train: a batch whose activations pass the adapter's binding limit is refused in one sentence; smaller ones run", async () => {
  const cfg = { ...CFG, vocab_size: 100, context_length: 1024, emb_dim: 48, n_heads: 12 };
  using model = await GPTModel.create(cfg, { seed: 1, trainable: true });
  const rows = (b: number, t: number) => Array.from({ length: b }, () => Array.from({ length: t }, (_, i) => i % 100));
  // 3 x 12 heads x 1024^2 attention weights x 4 bytes = 151 MB > the 128 MiB binding
  await assert.rejects(
    backward(model, rows(3, 1024), rows(3, 1024)),
    /^RangeError: Cannot train with batch 3 x context 1024: its attention weights need 150994944 bytes in one binding, over the adapter's limit of \d+; use a smaller batch or context$/,
  );
  assert.ok(Number.isFinite(await backward(model, rows(1, 1024), rows(1, 1024))));
});
