// No silent wrong answers: a model destroyed during a call, sizes past a GPU limit, configs that
// do not fit their tensors, sizes that would exhaust memory.
import assert from "node:assert/strict";
import { GPTModel } from "../src/model/model.ts";
import { generate, generateTextSimple, stream } from "../src/model/generate.ts";
import { WeightsError } from "../src/weights/model_weights.ts";
import { main } from "../src/cli/cli.ts";
import { randomParams, tensorsOf, TESTDATA } from "./_helpers.ts";

const CFG = { vocab_size: 300, context_length: 64, emb_dim: 32, n_heads: 4, n_layers: 2, drop_rate: 0, qkv_bias: true };

Deno.test("destroy() during a call rejects it instead of returning what the destroyed buffers held", async () => {
  const p = randomParams(CFG, 1);
  for (const [n, wait] of [[40, 2], [200, 5], [1500, 20], [64, 0]]) {
    const model = await GPTModel.fromTensors(CFG, tensorsOf(CFG, p));
    const call = generate(model, [[1, 2, 3]], { maxNewTokens: n });
    await new Promise((r) => setTimeout(r, wait));
    model.destroy();
    await assert.rejects(call, /destroyed/, `${n} tokens, destroyed after ${wait} ms`);
  }
  for (
    const run of [
      (m: GPTModel) => m.forward([[1, 2, 3, 4]]),
      (m: GPTModel) => m.loss([[1, 2, 3, 4]], [[2, 3, 4, 5]]),
      (m: GPTModel) => generateTextSimple(m, [[1, 2]], 30, 64),
      async (m: GPTModel) => {
        for await (const _ of stream(m, [1, 2], { maxNewTokens: 100 })) { /* read on */ }
      },
    ]
  ) {
    const model = await GPTModel.fromTensors(CFG, tensorsOf(CFG, p));
    const call = run(model);
    model.destroy();
    await assert.rejects(call, /destroyed/);
  }
});

Deno.test("forward() and loss() refuse more token rows than one dispatch takes, naming the limit", async () => {
  const cfg = { ...CFG, context_length: 1024, vocab_size: 64 };
  using model = await GPTModel.fromTensors(cfg, tensorsOf(cfg, randomParams(cfg, 2)));
  const rows = Array.from({ length: 64 }, () => new Array(1024).fill(1)); // 65,536 rows
  await assert.rejects(
    () => model.forward(rows),
    (e: Error) => e instanceof RangeError && /65536 token rows, over the 65535/.test(e.message),
  );
  await assert.rejects(() => model.loss(rows, rows), RangeError);
  const ok = await model.forward(rows.slice(0, 1));
  assert.equal(ok.length, 1024 * 64);
});

Deno.test("a config.json that does not fit its tensors is refused before anything is allocated", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.copyFile(`${TESTDATA}tiny_hf_gpt2/model.safetensors`, `${dir}/model.safetensors`);
    const cfg = JSON.parse(await Deno.readTextFile(`${TESTDATA}tiny_hf_gpt2/config.json`));
    for (
      const [key, value, re] of [
        ["n_layer", 1_000_000_000, /says 1000000000 layers but the file holds 3/],
        ["n_layer", 2, /'trf_blocks\.2\..*' is not part of a model with 2 layers/],
        ["vocab_size", 50257, /tok_emb\.weight the shape \[50257,64\] but the file has \[101,64\]/],
        ["n_positions", 1 << 30, /pos_emb\.weight/],
      ] as const
    ) {
      await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ ...cfg, [key]: value, n_ctx: undefined }));
      const t = performance.now();
      await assert.rejects(() => GPTModel.load(dir), (e: Error) => e instanceof WeightsError && re.test(e.message));
      assert.ok(performance.now() - t < 5000, "refused at once");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sizes that would exhaust memory, and seeds past the sampler's range, are refused with one sentence", async () => {
  using model = await GPTModel.fromTensors(CFG, tensorsOf(CFG, randomParams(CFG, 3)));
  await assert.rejects(() => generate(model, [[1]], { maxNewTokens: 1e8 }), /over the 33554432 one call holds/);
  await assert.rejects(() => generateTextSimple(model, [[1]], 1e8, 64), RangeError);
  await assert.rejects(
    () => generate(model, [[1]], { maxNewTokens: 2, temperature: 1, seed: 2 ** 32 }),
    /over the sampler's 32 bits/,
  );
  // greedy calls do not use the seed
  assert.equal((await generate(model, [[1]], { maxNewTokens: 2, seed: 2 ** 40 }))[0].length, 3);
  const err: string[] = [];
  assert.equal(await main(["--max-new-tokens", "100000000", "--quiet", "x"], () => {}, (s) => err.push(s)), 1);
  assert.match(err.join("\n"), /one call holds/);
});

Deno.test("the CLI refuses an empty --weights instead of running the untrained model", async () => {
  const err: string[] = [];
  assert.equal(await main(["--weights", "", "Hello"], () => {}, (s) => err.push(s)), 2);
  assert.match(err[0], /--weights is empty/);
});

Deno.test("an AbortSignal stops generate() within a chunk, rejects with its reason, and leaves the model usable", async () => {
  const p = randomParams(CFG, 4);
  using model = await GPTModel.fromTensors(CFG, tensorsOf(CFG, p));
  const want = await generate(model, [[1, 2, 3]], { maxNewTokens: 40 });
  const stop = new AbortController();
  const t = performance.now();
  const call = generate(model, [[1, 2, 3]], { maxNewTokens: 60_000, contextSize: 64, signal: stop.signal });
  setTimeout(() => stop.abort(new Error("enough")), 50);
  await assert.rejects(call, /enough/);
  assert.ok(performance.now() - t < 30_000, "stopped long before 60,000 steps");
  assert.deepEqual(await generate(model, [[1, 2, 3]], { maxNewTokens: 40 }), want, "usable afterwards");
  await assert.rejects(() => generate(model, [[1]], { maxNewTokens: 2, signal: AbortSignal.abort() }), /abort/i);
  await assert.rejects(() => model.forward([[1, 2]], { signal: AbortSignal.abort() }), /abort/i);
  // stream() ends its iteration instead of throwing
  const s = new AbortController();
  let pieces = 0;
  for await (const _ of stream(model, [1, 2, 3], { maxNewTokens: 2000, signal: s.signal, chunkSize: 4 })) {
    if (++pieces === 2) s.abort();
  }
  assert.ok(pieces >= 2);
});

Deno.test("misspelled options, options with no effect and values that underflow float32 are refused, not ignored", async () => {
  using model = await GPTModel.fromTensors(CFG, tensorsOf(CFG, randomParams(CFG, 5)));
  const bad: [() => Promise<unknown>, RegExp][] = [
    [() => generate(model, [[1]], { maxNewTokens: 2, temprature: 1 } as never), /unknown option 'temprature'/],
    [() => generate(model, [[1]], { maxNewTokens: 2, topK: 5 }), /topK has no effect in greedy decoding/],
    [() => generate(model, [[1]], { maxNewTokens: 2, topP: 0.5 }), /topP has no effect/],
    [() => generate(model, [[1]], { maxNewTokens: 2, temperature: 5e-324 }), /temperature '5e-324' is below 1e-6/],
    [() => generate(model, [[1]], { maxNewTokens: 2, temperature: 1, topP: 1e-300 }), /topP '1e-300' is below 1e-6/],
    [() => model.forward([[1]], { signl: undefined } as never), /unknown option 'signl'/],
    [() => GPTModel.create(CFG, { sed: 1 } as never), /unknown option 'sed', the options are seed, dtype/],
    [() => GPTModel.fromTensors(CFG, [], { backend: { matmull: "wide" } } as never), /unknown option 'matmull'/],
  ];
  for (const [call, re] of bad) {
    await assert.rejects(call, (e: Error) => re.test(e.message) && !e.message.includes("\n"));
  }
  const err: string[] = [];
  assert.equal(await main(["--top-k", "40", "x"], () => {}, (s) => err.push(s)), 2);
  assert.match(err[0], /--top-k has no effect in greedy decoding/);
});

Deno.test("weights that are not a regular file (a FIFO) fail at once instead of hanging", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fifo = `${dir}/model.safetensors`;
    const made = await new Deno.Command("mkfifo", { args: [fifo] }).output().catch(() => undefined);
    if (!made?.success) return; // no mkfifo here
    await Deno.copyFile(`${TESTDATA}tiny_hf_gpt2/config.json`, `${dir}/config.json`);
    for (const path of [dir, fifo]) {
      await assert.rejects(
        () => GPTModel.load(path),
        (e: Error) => e instanceof WeightsError && /not a regular file/.test(e.message),
      );
    }
    const err: string[] = [];
    assert.equal(await main(["--weights", dir, "x"], () => {}, (s) => err.push(s)), 1);
    assert.equal(err.length, 1);
    // ids outside the untrained model's vocabulary are a usage error, found before the model is made
    assert.equal(await main(["--ids", "1,50257", "--quiet"], () => {}, (s) => err.push(s)), 2);
    assert.match(err.at(-1)!, /token id 50257 is outside GPT-2's vocabulary/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fuzzed config.json files next to valid weights load or fail with one typed error, quickly", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.copyFile(`${TESTDATA}tiny_hf_gpt2/model.safetensors`, `${dir}/model.safetensors`);
    const base = JSON.parse(await Deno.readTextFile(`${TESTDATA}tiny_hf_gpt2/config.json`));
    const keys = [
      "vocab_size",
      "n_positions",
      "n_ctx",
      "n_embd",
      "n_head",
      "n_layer",
      "layer_norm_epsilon",
      "model_type",
    ];
    const values = [0, -1, 1, 2, 3, 4, 63, 64, 100, 101, 1e9, 2 ** 53, 0.5, NaN, null, "12", [], {}, true, 1e-300];
    let seed = 11;
    const next = (n: number) => Math.floor(((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * n);
    let loaded = 0;
    for (let i = 0; i < 60; i++) {
      const cfg = { ...base };
      for (let j = 0; j <= next(3); j++) cfg[keys[next(keys.length)]] = values[next(values.length)];
      await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(cfg));
      const t = performance.now();
      try {
        using m = await GPTModel.load(dir);
        assert.equal(m.config.n_layers, 3);
        loaded++;
      } catch (e) {
        const ok = e instanceof WeightsError || e instanceof RangeError || e instanceof TypeError;
        assert.ok(ok, `${JSON.stringify(cfg)}: ${(e as Error).name}: ${(e as Error).message}`);
        assert.ok(!(e as Error).message.includes("\n"), (e as Error).message);
      }
      assert.ok(performance.now() - t < 10_000, `${JSON.stringify(cfg)} took ${performance.now() - t} ms`);
    }
    assert.ok(loaded > 0, "some mutations are harmless");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("with submissions of one step (CPU adapters' default), timers run while generate() works", async () => {
  const p = randomParams(CFG, 8);
  using model = await GPTModel.fromTensors(CFG, tensorsOf(CFG, p), { backend: { submitSteps: 1, submitBlocks: 1 } });
  using batched = await GPTModel.fromTensors(CFG, tensorsOf(CFG, p), { backend: { submitSteps: 32, submitBlocks: 0 } });
  let ticks = 0;
  const timer = setInterval(() => ticks++, 0);
  try {
    const out = await generate(model, [[1, 2, 3]], { maxNewTokens: 120 });
    assert.ok(ticks >= 20, `the timer ran ${ticks} times during 120 steps`);
    // the parts change when work is submitted, not what it computes
    assert.deepEqual(out, await generate(batched, [[1, 2, 3]], { maxNewTokens: 120 }));
  } finally {
    clearInterval(timer);
  }
});

Deno.test("a config past the kernels' sizes, a bad drop_rate or qkv_bias, or an unknown key is refused before anything is drawn", async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ vocab_size: 2 ** 31 }, /'vocab_size' is 2147483648, expected an integer from 1 to 16777216/],
    [{ context_length: 2 ** 30 }, /'context_length'/],
    [{ drop_rate: 5 }, /'drop_rate' is 5/],
    [{ qkv_bias: "yes" }, /'qkv_bias' is "yes", expected true or false/],
    [{ n_embd: 32 }, /unknown key 'n_embd'/],
  ];
  for (const [change, message] of cases) {
    const t0 = Date.now();
    await assert.rejects(() => GPTModel.create({ ...CFG, ...change }, { seed: 1 }), (e: Error) => {
      assert.ok(e instanceof RangeError, String(e));
      assert.match(e.message, message);
      return true;
    });
    assert.ok(Date.now() - t0 < 1000, `${JSON.stringify(change)} took ${Date.now() - t0} ms`);
  }
});

Deno.test("the perplexity command names a missing or empty file in one line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/empty.txt`, "");
    for (
      const [file, message] of [[`${dir}/nope.txt`, /cannot read '.*nope\.txt': no such file/], [
        `${dir}/empty.txt`,
        /'.*empty\.txt' has 0 tokens; perplexity needs a text of at least 2/,
      ]] as const
    ) {
      const err: string[] = [];
      assert.equal(await main(["perplexity", file, "--quiet"], () => {}, (s) => err.push(s)), 1);
      assert.equal(err.length, 1, err.join("\n"));
      assert.match(err[0], message);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
