// Device loss, limits, lifecycle, long runs and hostile files.
import assert from "node:assert/strict";
import { GPTModel } from "../src/model/model.ts";
import { generate, generateTextSimple } from "../src/model/generate.ts";
import { DeviceLostError, getGpu } from "../src/gpu/device.ts";
import { SafetensorsError, SafetensorsFile, writeSafetensors } from "../src/weights/safetensors.ts";
import { WeightsError } from "../src/weights/model_weights.ts";
import { TorchGenerator } from "../src/weights/torch_random.ts";
import { randomIds, rawSafetensors, TESTDATA } from "./_helpers.ts";

const SMALL = {
  vocab_size: 64,
  context_length: 16,
  emb_dim: 16,
  n_heads: 2,
  n_layers: 1,
  drop_rate: 0,
  qkv_bias: false,
};
const SOAK = Number(Deno.env.get("GPT_WEBGPU_SOAK_TOKENS") ?? 10000);

const mib = () => Deno.memoryUsage().rss / 2 ** 20;

Deno.test("a lost device rejects calls in flight and later calls with DeviceLostError; a new model works after", async () => {
  const m = await GPTModel.create(SMALL, { seed: 1 });
  const { device } = await getGpu();
  const inFlight = generateTextSimple(m, [[1, 2, 3]], 500, 16);
  device.destroy();
  await assert.rejects(inFlight, (e: Error) => e instanceof DeviceLostError || /lost|destroyed/i.test(e.message));
  await new Promise((r) => setTimeout(r, 50));
  await assert.rejects(m.forward([[1]]), (e: Error) => {
    assert.ok(e instanceof DeviceLostError, String(e));
    assert.match(e.message, /the GPU device was lost \(destroyed: /);
    return true;
  });
  m.destroy();
  using fresh = await GPTModel.create(SMALL, { seed: 1 });
  assert.equal((await generate(fresh, [[1, 2]], { maxNewTokens: 3 }))[0].length, 5);
});

Deno.test("a model over the adapter's binding limit fails at creation, naming the size and the limit", async () => {
  await assert.rejects(
    GPTModel.create({ ...SMALL, emb_dim: 128 }, { maxBindingBytes: 200000 }),
    /its feed-forward weight needs 262144 bytes in one binding, 62144 over the adapter's limit of 200000/,
  );
  await assert.rejects(
    GPTModel.create({ ...SMALL, emb_dim: 64 }, { maxBindingBytes: 40000 }),
    /one embedding chunk of 256 rows needs 65536 bytes, 25536 over the adapter's storage binding limit of 40000/,
  );
  const { device } = await getGpu();
  const big = { ...SMALL, vocab_size: 50257, emb_dim: 1024, n_heads: 16, context_length: 1024 * 1024 };
  await assert.rejects(GPTModel.create(big), (e: Error) => {
    assert.match(e.message, /position embedding needs \d+ bytes in one binding, \d+ over the adapter's limit/);
    assert.ok(device.limits.maxStorageBufferBindingSize > 0);
    return true;
  });
});

Deno.test("creating and destroying a model 50 times keeps memory flat; two models work side by side", async () => {
  const cfg = { ...SMALL, vocab_size: 5000, emb_dim: 64, n_heads: 4, n_layers: 2 }; // ~1.3 MB of weights
  // warm up: the first models compile pipelines and grow the allocators' pools
  for (let i = 0; i < 25; i++) {
    using m = await GPTModel.create(cfg, { seed: i });
    await generate(m, [[1, 2, 3]], { maxNewTokens: 2 });
  }
  const before = mib();
  for (let i = 0; i < 50; i++) {
    using m = await GPTModel.create(cfg, { seed: i });
    await generate(m, [[1, 2, 3]], { maxNewTokens: 2 });
  }
  const grown = mib() - before;
  assert.ok(grown < 20, `RSS grew by ${grown.toFixed(1)} MiB over 50 models`);
  using a = await GPTModel.create(cfg, { seed: 1 });
  using b = await GPTModel.create(cfg, { seed: 2 });
  const [ra, rb] = await Promise.all([
    generate(a, [[7, 8]], { maxNewTokens: 6 }),
    generate(b, [[7, 8]], { maxNewTokens: 6 }),
  ]);
  assert.deepEqual(ra, await generate(a, [[7, 8]], { maxNewTokens: 6 }));
  assert.deepEqual(rb, await generate(b, [[7, 8]], { maxNewTokens: 6 }));
});

Deno.test("2,000 new tokens past a 16-token context: generate() equals generateTextSimple()", async () => {
  using m = await GPTModel.create(SMALL, { seed: 3 });
  const ids = randomIds(new TorchGenerator(1), 2, 5, SMALL.vocab_size);
  const a = await generate(m, ids, { maxNewTokens: 2000, contextSize: 16 });
  const b = await generateTextSimple(m, ids, 2000, 16);
  assert.deepEqual(a, b);
  assert.equal(a[0].length, 2005);
});

Deno.test(`a ${SOAK}-token soak on a tiny model keeps memory flat (GPT_WEBGPU_SOAK_TOKENS scales it)`, async () => {
  using m = await GPTModel.create(SMALL, { seed: 4 });
  await generate(m, [[1]], { maxNewTokens: 200, contextSize: 8, temperature: 1, seed: 1 });
  const before = mib();
  for (let done = 0; done < SOAK; done += 2000) {
    await generate(m, [[1]], { maxNewTokens: Math.min(2000, SOAK - done), contextSize: 8, temperature: 1, seed: done });
  }
  const grown = mib() - before;
  assert.ok(grown < 40, `RSS grew by ${grown.toFixed(1)} MiB over ${SOAK} tokens`);
});

Deno.test("fuzz: 1,000 malformed safetensors files each end in one typed error, never a crash, hang or huge allocation", async () => {
  const dir = await Deno.makeTempDir();
  const g = new TorchGenerator(99);
  const rnd = (n: number) => g.nextUint32() % n;
  const base = await Deno.readFile(`${TESTDATA}tiny_book.safetensors`);
  const baseLen = Number(new DataView(base.buffer).getBigUint64(0, true));
  const baseHeader = JSON.parse(new TextDecoder().decode(base.subarray(8, 8 + baseLen)));
  const names = Object.keys(baseHeader).filter((k) => k !== "__metadata__");
  const counts: Record<string, number> = {};
  let nanLoaded = 0;
  try {
    for (let i = 0; i < 1000; i++) {
      let bytes: Uint8Array;
      const kind = i % 10;
      if (kind === 0) { // random header length
        bytes = base.slice();
        new DataView(bytes.buffer).setBigUint64(0, BigInt(g.nextUint32()) * BigInt(1 + rnd(1 << 20)), true);
      } else if (kind === 1) { // truncated
        bytes = base.slice(0, rnd(base.length));
      } else if (kind === 2) { // random bytes in the header
        bytes = base.slice();
        for (let j = 0; j < 1 + rnd(8); j++) bytes[8 + rnd(baseLen)] = rnd(256);
      } else {
        const h = structuredClone(baseHeader);
        const t = h[names[rnd(names.length)]];
        if (kind === 3) t.data_offsets = [t.data_offsets[0], t.data_offsets[1] + 4 * (1 + rnd(100))]; // overlap / past end
        else if (kind === 4) t.data_offsets = [rnd(1 << 30), rnd(1 << 30)]; // out of range
        else if (kind === 5) t.shape = [2 ** 20 + rnd(2 ** 20), 2 ** 20 + rnd(2 ** 20), 4096]; // huge shape
        else if (kind === 6) t.dtype = ["I64", "U8", "F64", "X", 7][rnd(5)]; // wrong dtype
        else if (kind === 7) t.shape = [t.shape[0] + 1, ...t.shape.slice(1)]; // shape off by one row
        else if (kind === 8) delete h[names[rnd(names.length)]]; // a tensor missing
        else t.shape = "[1,2]"; // not an array
        bytes = rawSafetensors(h, base.subarray(8 + baseLen));
      }
      if (kind === 9 && i % 20 === 9) { // NaN / Inf weights: a valid file
        bytes = base.slice();
        const f = new Float32Array(bytes.buffer, 8 + baseLen, (bytes.length - 8 - baseLen) / 4);
        f[rnd(f.length)] = [NaN, Infinity, -Infinity][rnd(3)];
      }
      const path = `${dir}/f${i}.safetensors`;
      await Deno.writeFile(path, bytes);
      try {
        using m = await GPTModel.load(path);
        nanLoaded++;
        await m.forward([[1, 2, 3]]); // NaN/Inf propagate into the logits: no crash
      } catch (e) {
        const ok = e instanceof SafetensorsError || e instanceof WeightsError || e instanceof RangeError ||
          e instanceof TypeError;
        assert.ok(ok, `file ${i} (kind ${kind}): untyped error ${e}`);
        counts[(e as Error).name] = (counts[(e as Error).name] ?? 0) + 1;
      }
      await Deno.remove(path);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assert.ok((counts.SafetensorsError ?? 0) > 300 && (counts.WeightsError ?? 0) > 50, JSON.stringify(counts));
  assert.ok(nanLoaded >= 1 && nanLoaded <= 150, `valid files loaded: ${nanLoaded}`);
});

Deno.test("SafetensorsFile.open() checks the header length against the file before allocating", async () => {
  const p = await Deno.makeTempFile();
  try {
    await Deno.writeFile(p, rawSafetensors({}, new Uint8Array(0), 2n ** 62n));
    const before = mib();
    await assert.rejects(SafetensorsFile.open(p), /is larger than the file/);
    assert.ok(mib() - before < 50);
    await writeSafetensors(p, { a: { shape: [2], data: new Float32Array([1, 2]) } });
    using f = await SafetensorsFile.open(p);
    assert.deepEqual([...await f.read("a")], [1, 2]);
  } finally {
    await Deno.remove(p);
  }
});

Deno.test({
  name:
    "on Linux the device comes from Vulkan alone (no OpenGL Mesa loaded); a DENO_WEBGPU_BACKEND the user set is kept",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const device = new URL("../src/gpu/device.ts", import.meta.url).href;
    const script = `import { getGpu } from "${device}";
      const before = Deno.env.get("DENO_WEBGPU_BACKEND") ?? null;
      const g = await getGpu();
      const maps = Deno.readTextFileSync("/proc/self/maps");
      console.log(JSON.stringify({ before, after: Deno.env.get("DENO_WEBGPU_BACKEND") ?? null,
        egl: maps.includes("libEGL"), mesaEgl: maps.includes("libEGL_mesa"), found: g.description.length > 0 }));`;
    // the child starts from this environment without DENO_WEBGPU_BACKEND, plus `extra`
    const base = Object.entries(Deno.env.toObject()).filter(([k]) => k !== "DENO_WEBGPU_BACKEND");
    const run = async (extra: Record<string, string>) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["eval", "--ext=ts", script],
        env: { ...Object.fromEntries(base), ...extra },
        clearEnv: true,
        stderr: "inherit",
      }).output();
      // what it printed is judged, not how it exited (see tests/run.ts on crashes at exit)
      const line = new TextDecoder().decode(out.stdout).split("\n").find((l) => l.startsWith("{"));
      assert.ok(line, `the child process printed no result (exit code ${out.code})`);
      return JSON.parse(line);
    };
    // Mesa's OpenGL stays unloaded (an NVIDIA Vulkan driver loads EGL of its own, so EGL itself may be there)
    const a = await run({});
    assert.deepEqual([a.before, a.after, a.mesaEgl, a.found], [null, null, false, true]);
    const b = await run({ DENO_WEBGPU_BACKEND: "vulkan,gl", GPT_WEBGPU_ALLOW_SLOW_ADAPTER: "1" });
    assert.deepEqual([b.before, b.after, b.egl], ["vulkan,gl", "vulkan,gl", true]);
  },
});
