// GPT-2 by name, from a loopback stand-in for the Hugging Face hub (tests/_hub.ts).
import assert from "node:assert/strict";
import { GPTModel } from "../src/model/model.ts";
import { generate } from "../src/model/generate.ts";
import { HubError, hubFile, repoFolder } from "../src/weights/hub.ts";
import { main } from "../src/cli/cli.ts";
import { fixture } from "./_helpers.ts";
import { COMMIT, CONFIG_ETAG, SHA, startHub, WEIGHTS } from "./_hub.ts";

async function tempCache(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "hub_test_" });
}

interface Fx {
  input_ids: number[][];
  generated_ids: number[][];
  max_new_tokens: number;
}

Deno.test("GPTModel.fromPretrained() downloads config.json and model.safetensors into the hub cache layout and gives the fixture's ids", async () => {
  const hub = startHub();
  const cache = await tempCache();
  try {
    const progress: number[] = [];
    using model = await GPTModel.fromPretrained("owner/tiny", {
      cacheDir: cache,
      endpoint: hub.url,
      onDownload: (p) => progress.push(p.done),
    });
    const fx = fixture<Fx>("tiny_hf_gpt2.json");
    assert.deepEqual(await generate(model, fx.input_ids, { maxNewTokens: fx.max_new_tokens }), fx.generated_ids);
    const storage = `${cache}/models--owner--tiny`;
    assert.equal(await Deno.readTextFile(`${storage}/refs/main`), COMMIT);
    for (const [file, blob] of [["config.json", CONFIG_ETAG], ["model.safetensors", SHA]]) {
      const link = `${storage}/snapshots/${COMMIT}/${file}`;
      assert.equal(await Deno.readLink(link), `../../blobs/${blob}`, `${file} links to its blob`);
      assert.ok((await Deno.lstat(link)).isSymlink);
    }
    assert.deepEqual(await Deno.readFile(`${storage}/blobs/${SHA}`), WEIGHTS);
    assert.deepEqual([...Deno.readDirSync(`${storage}/blobs`)].map((e) => e.name).sort(), [CONFIG_ETAG, SHA].sort());
    assert.equal(progress.at(-1), WEIGHTS.length, "progress reaches the file's size");
    // nothing but the two files was asked for
    assert.ok(hub.requests.every((r) => /config\.json|model\.safetensors|\/lfs\//.test(r)), hub.requests.join("\n"));

    // cached: online, one HEAD per file and no download; offline with the server gone, no request at all
    hub.requests.length = 0;
    using again = await GPTModel.fromPretrained("owner/tiny", { cacheDir: cache, endpoint: hub.url });
    assert.ok(hub.requests.every((r) => r.startsWith("HEAD")), hub.requests.join("\n"));
    await hub.close();
    using offline = await GPTModel.fromPretrained("owner/tiny", { cacheDir: cache, endpoint: hub.url, offline: true });
    assert.deepEqual(
      await generate(offline, fx.input_ids, { maxNewTokens: 3 }),
      await generate(again, fx.input_ids, { maxNewTokens: 3 }),
    );
    // online but unreachable: the cached revision is used
    using unreachable = await GPTModel.fromPretrained("owner/tiny", { cacheDir: cache, endpoint: hub.url });
    assert.equal(unreachable.config.vocab_size, 101);
    await assert.rejects(
      () => GPTModel.fromPretrained("owner/other", { cacheDir: cache, endpoint: hub.url, offline: true }),
      (e: Error) => e instanceof HubError && /offline.*not in the cache/.test(e.message),
    );
    await assert.rejects(
      () => GPTModel.fromPretrained("owner/other", { cacheDir: cache, endpoint: hub.url }),
      (e: Error) => e instanceof HubError && /cannot be reached.*not in the cache/.test(e.message),
    );
  } finally {
    await hub.close().catch(() => {});
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("hubFile() resumes an interrupted download and never puts a partial file in snapshots/", async () => {
  const hub = startHub();
  const cache = await tempCache();
  try {
    const storage = `${cache}/${repoFolder("owner/tiny")}`;
    hub.cutAfter = 100_000;
    await assert.rejects(
      () => hubFile("owner/tiny", "model.safetensors", { cacheDir: cache, endpoint: hub.url }),
      (e: Error) => e instanceof HubError && /run again to resume/.test(e.message),
    );
    assert.equal((await Deno.stat(`${storage}/blobs/${SHA}.incomplete`)).size, 100_000);
    await assert.rejects(() => Deno.lstat(`${storage}/snapshots/${COMMIT}/model.safetensors`), Deno.errors.NotFound);
    await assert.rejects(() => Deno.stat(`${storage}/blobs/${SHA}`), Deno.errors.NotFound);
    hub.requests.length = 0;
    const path = await hubFile("owner/tiny", "model.safetensors", { cacheDir: cache, endpoint: hub.url });
    assert.ok(hub.requests.includes(`GET /lfs/${SHA} bytes=100000-`), hub.requests.join("\n"));
    assert.deepEqual(await Deno.readFile(path), WEIGHTS);
    await assert.rejects(() => Deno.stat(`${storage}/blobs/${SHA}.incomplete`), Deno.errors.NotFound);
  } finally {
    await hub.close();
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("GPTModel.fromPretrained() fails in one sentence: unknown repo or revision, gated, no safetensors, not GPT-2; a renamed repo is followed", async () => {
  const hub = startHub();
  const cache = await tempCache();
  const get = (name: string, extra = {}) =>
    GPTModel.fromPretrained(name, { cacheDir: cache, endpoint: hub.url, ...extra });
  const fails = async (name: string, re: RegExp, extra = {}) => {
    await assert.rejects(
      () => get(name, extra),
      (e: Error) => e instanceof HubError && re.test(e.message) && !e.message.includes("\n"),
    );
  };
  try {
    await fails("owner/missing", /no such repository/);
    await fails("owner/tiny", /no revision 'v9'/, { revision: "v9" });
    await fails("owner/gated", /refused access \(401\).*HF_TOKEN/);
    using gated = await get("owner/gated", { token: "secret" });
    assert.equal(gated.config.n_layers, 3);
    await fails("owner/binonly", /has no model\.safetensors/);
    await fails("owner/llama", /model_type 'llama'.*only GPT-2/);
    await fails("../etc", /'name' or 'owner\/name'/);
    using renamed = await get("tiny");
    assert.equal(renamed.config.emb_dim, 64);
    assert.ok((await Deno.stat(`${cache}/models--tiny/snapshots/${COMMIT}/model.safetensors`)).isFile);
  } finally {
    await hub.close();
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("the CLI's --model downloads with plain progress lines, and --offline works from the cache", async () => {
  const hub = startHub();
  const cache = await tempCache();
  const env = { HF_HUB_CACHE: cache, HF_ENDPOINT: hub.url };
  const old = Object.fromEntries(Object.keys(env).map((k) => [k, Deno.env.get(k)]));
  for (const [k, v] of Object.entries(env)) Deno.env.set(k, v);
  try {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(
      ["--model", "owner/tiny", "--ids", "1,2,3", "--max-new-tokens", "2", "--no-stream"],
      (s) => out.push(s),
      (s) => err.push(s),
    );
    assert.equal(code, 0, err.join("\n"));
    assert.ok(err.some((l) => /^downloading model\.safetensors: .* MB, .* MB\/s/.test(l)), err.join("\n"));
    assert.match(out.join("\n"), /Output: \[\[1, 2, 3, \d+, \d+\]\]/);
    await hub.close();
    const offline: string[] = [];
    const code2 = await main(
      ["--model", "owner/tiny", "--offline", "--ids", "1,2,3", "--max-new-tokens", "2", "--quiet", "--no-stream"],
      (s) => offline.push(s),
      (s) => err.push(s),
    );
    assert.equal(code2, 0, err.join("\n"));
    assert.deepEqual(offline, out);
    const bad: string[] = [];
    assert.equal(await main(["--model", "owner/nope", "--offline", "x"], () => {}, (s) => bad.push(s)), 1);
    assert.match(bad.join("\n"), /^error: Cannot load 'owner\/nope' offline/);
    assert.equal(await main(["--model", "gpt2", "--weights", "x", "y"], () => {}, () => {}), 2);
  } finally {
    for (const [k, v] of Object.entries(old)) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
    await hub.close().catch(() => {});
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("a hub run needs only the permissions the README names: net, read and write (Deno.symlink needs them unscoped) and the HF variables", async () => {
  const hub = startHub();
  const cache = await tempCache();
  try {
    const mod = new URL("../mod.ts", import.meta.url).pathname;
    const env = "HOME,XDG_CACHE_HOME,HF_HOME,HF_HUB_CACHE,HF_ENDPOINT,HF_TOKEN,HF_TOKEN_PATH,HF_HUB_OFFLINE";
    const run = (perms: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--no-prompt",
          ...perms,
          mod,
          "--model",
          "owner/tiny",
          "--ids",
          "1,2",
          "--max-new-tokens",
          "1",
          "--quiet",
          "--no-stream",
        ],
        env: { HF_HUB_CACHE: cache, HF_ENDPOINT: hub.url, NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
    const ok = await run([`--allow-net`, `--allow-read`, `--allow-write`, `--allow-env=${env}`]);
    assert.equal(ok.code, 0, new TextDecoder().decode(ok.stderr));
    assert.match(new TextDecoder().decode(ok.stdout), /Output: \[\[1, 2, \d+\]\]/);
    // without network access it still runs from the cache; without write access a download fails
    const cached = await run([`--allow-read=${cache}`, `--allow-env=${env}`]);
    assert.equal(cached.code, 0, new TextDecoder().decode(cached.stderr));
    await Deno.remove(cache, { recursive: true });
    await Deno.mkdir(cache);
    const readOnly = await run([`--allow-net`, `--allow-read=${cache}`, `--allow-env=${env}`]);
    assert.equal(readOnly.code, 1);
    assert.equal(new TextDecoder().decode(readOnly.stderr).trim().split("\n").length, 1);
  } finally {
    await hub.close();
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("two downloads of the same model at once fetch its weights once, and both get them", async () => {
  const hub = startHub();
  const cache = await tempCache();
  try {
    const opts = { cacheDir: cache, endpoint: hub.url };
    const [a, b] = await Promise.all([
      hubFile("owner/tiny", "model.safetensors", opts),
      hubFile("owner/tiny", "model.safetensors", opts),
    ]);
    assert.equal(a, b);
    assert.deepEqual(await Deno.readFile(a), WEIGHTS);
    assert.equal(hub.requests.filter((r) => r.startsWith(`GET /lfs/`)).length, 1, hub.requests.join("\n"));
  } finally {
    await hub.close();
    await Deno.remove(cache, { recursive: true });
  }
});
