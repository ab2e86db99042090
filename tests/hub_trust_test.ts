// Downloads that go wrong, from a loopback stand-in hub (tests/_hub.ts): corrupt, short and long
// bodies, stalls, redirect loops, a dead storage host, planted symlinks, odd revisions and ETags.
// Nothing wrong is ever kept, every failure is one HubError naming the file and the URL, and the
// next run against a healthy hub gets the right bytes.
import assert from "node:assert/strict";
import { HubError, hubFile, repoFolder } from "../src/weights/hub.ts";
import { COMMIT, type Hub, type HubMode, SHA, startHub, WEIGHTS } from "./_hub.ts";

const FILE = "model.safetensors";

async function withHub(fn: (hub: Hub, cache: string, blobs: string) => Promise<void>): Promise<void> {
  const hub = startHub();
  const cache = await Deno.makeTempDir({ prefix: "hub_trust_" });
  try {
    await fn(hub, cache, `${cache}/${repoFolder("owner/tiny")}/blobs`);
  } finally {
    await hub.close();
    await Deno.remove(cache, { recursive: true });
  }
}

async function list(dir: string): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
  } catch {
    return [];
  }
}

/** The hub misbehaves: the download fails with `message`, keeps nothing, and works once the hub is healthy. */
async function failsThenRecovers(mode: HubMode, message: RegExp, timeoutMs?: number): Promise<void> {
  await withHub(async (hub, cache, blobs) => {
    hub.mode = mode;
    const opts = { cacheDir: cache, endpoint: hub.url, timeoutMs };
    const t0 = Date.now();
    await assert.rejects(() => hubFile("owner/tiny", FILE, opts), (e: Error) => {
      assert.ok(e instanceof HubError, `${mode}: ${e}`);
      assert.match(e.message, message, mode);
      assert.match(e.message, /'model\.safetensors'/, `${mode}: names the file`);
      assert.match(e.message, /http:\/\/127\.0\.0\.1:\d+\//, `${mode}: names the URL`);
      return true;
    });
    if (timeoutMs) assert.ok(Date.now() - t0 < timeoutMs * 10 + 2000, `${mode}: gave up in ${Date.now() - t0} ms`);
    assert.ok(!(await list(blobs)).includes(SHA), `${mode}: no blob kept`);
    await assert.rejects(() => Deno.lstat(`${cache}/${repoFolder("owner/tiny")}/snapshots/${COMMIT}/${FILE}`));
    hub.mode = undefined;
    const path = await hubFile("owner/tiny", FILE, opts);
    assert.deepEqual(await Deno.readFile(path), WEIGHTS, `${mode}: the healthy hub's bytes`);
  });
}

Deno.test("hubFile(): a body whose SHA-256 is not the hub's is deleted, never kept, and the next run gets the file", async () => {
  await failsThenRecovers("corrupt", new RegExp(`SHA-256 should be ${SHA} and is [0-9a-f]{64}.*deleted`));
});

Deno.test("hubFile(): with no size announced, a short body fails its SHA-256 and is not kept", async () => {
  await failsThenRecovers("nosize-cut", /SHA-256 should be/);
});

Deno.test("hubFile(): a body longer than X-Linked-Size is refused and its partial file deleted (no 416 loop)", async () => {
  await failsThenRecovers("long", /more than the \d+ bytes the hub announced/);
});

Deno.test("hubFile(): a stalled HEAD or body gives up after timeoutMs, naming the file and the URL", async () => {
  await failsThenRecovers("stall-head", /no answer within 0\.3 s/, 300);
  await failsThenRecovers("stall-body", /no data for 0\.3 s/, 300);
});

Deno.test("hubFile(): a redirect loop and a dead storage host are one sentence each", async () => {
  await failsThenRecovers("loop", /redirect/i);
  await failsThenRecovers("dead-lfs", /Connection refused|connect/i);
});

Deno.test("hubFile(): a resume from bytes that are not the file's start is checked, thrown away and done again", async () => {
  await withHub(async (hub, cache, blobs) => {
    await Deno.mkdir(blobs, { recursive: true });
    // a planted prefix of the right length but the wrong bytes
    await Deno.writeFile(`${blobs}/${SHA}.incomplete`, new Uint8Array(1000).fill(7));
    const path = await hubFile("owner/tiny", FILE, { cacheDir: cache, endpoint: hub.url });
    assert.deepEqual(await Deno.readFile(path), WEIGHTS);
    assert.ok(hub.requests.some((r) => r.includes("bytes=1000-")), "it tried the resume first");
    // a partial file longer than the file itself: started over, no 416
    hub.requests.length = 0;
    await Deno.remove(path);
    await Deno.remove(`${blobs}/${SHA}`);
    await Deno.writeFile(`${blobs}/${SHA}.incomplete`, new Uint8Array(WEIGHTS.length + 10));
    assert.deepEqual(
      await Deno.readFile(await hubFile("owner/tiny", FILE, { cacheDir: cache, endpoint: hub.url })),
      WEIGHTS,
    );
    assert.ok(hub.requests.every((r) => !r.includes("bytes=")), hub.requests.join("\n"));
  });
});

Deno.test("hubFile(): a symlink planted as the partial file is not written through", async () => {
  await withHub(async (hub, cache, blobs) => {
    await Deno.mkdir(blobs, { recursive: true });
    const victim = `${cache}/victim.txt`;
    await Deno.writeTextFile(victim, "keep me");
    await Deno.symlink(victim, `${blobs}/${SHA}.incomplete`);
    const path = await hubFile("owner/tiny", FILE, { cacheDir: cache, endpoint: hub.url });
    assert.deepEqual(await Deno.readFile(path), WEIGHTS);
    assert.equal(await Deno.readTextFile(victim), "keep me");
  });
});

Deno.test("hubFile(): revisions like '.' and ETags like '..' are refused before anything is written", async () => {
  await withHub(async (hub, cache) => {
    for (const revision of [".", "..", "a/./b", "main/", "/main"]) {
      await assert.rejects(
        () => hubFile("owner/tiny", FILE, { cacheDir: cache, endpoint: hub.url, revision }),
        (e: Error) => e instanceof HubError && /is not a branch, tag or commit/.test(e.message),
        revision,
      );
    }
    hub.mode = "dot-etag";
    await assert.rejects(
      () => hubFile("owner/tiny", FILE, { cacheDir: cache, endpoint: hub.url }),
      (e: Error) => e instanceof HubError && /no commit or ETag/.test(e.message),
    );
    assert.deepEqual(await list(`${cache}/${repoFolder("owner/tiny")}`), []);
  });
});

Deno.test("the CLI's --model with HF_HUB_DOWNLOAD_TIMEOUT gives up on a stalled hub with one line, even with --quiet", async () => {
  await withHub(async (hub, cache) => {
    hub.mode = "stall-head";
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("../mod.ts", import.meta.url).pathname, "--model", "owner/tiny", "--quiet", "x"],
      env: { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache, HF_HUB_DOWNLOAD_TIMEOUT: "0.5" },
      stdout: "piped",
      stderr: "piped",
    });
    const t0 = Date.now();
    const { code, stderr } = await child.output();
    const err = new TextDecoder().decode(stderr);
    assert.equal(code, 1, err);
    assert.match(
      err,
      /^error: Cannot download 'config\.json' from http:\/\/127\.0\.0\.1:\d+\/owner\/tiny\/resolve\/main\/config\.json: .*no answer within 0\.5 s/,
    );
    assert.ok(Date.now() - t0 < 15_000);
  });
});
