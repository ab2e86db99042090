// `deno run -A mod.ts serve`: a real process on a loopback port, its key, usage errors, a
// graceful stop on SIGTERM with a stream in flight, and stops that no client can hold up.
import assert from "node:assert/strict";
import { main } from "../src/cli/cli.ts";
import { startServe } from "./_server.ts";

const MOD = new URL("../mod.ts", import.meta.url).pathname;

async function cli(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, (s) => out.push(s), (s) => err.push(s));
  return { code, out: out.join("\n"), err: err.join("\n") };
}

Deno.test("serve CLI: usage errors exit 2 with the value named; --help exits 0", async () => {
  let r = await cli(["serve", "--port", "abc"]);
  assert.equal(r.code, 2);
  assert.match(r.err, /--port/);
  r = await cli(["serve", "--port", "70000"]);
  assert.equal(r.code, 2);
  r = await cli(["serve", "--max-batch", "65"]);
  assert.equal(r.code, 2);
  r = await cli(["serve", "prompt"]);
  assert.equal(r.code, 2);
  assert.match(r.err, /no arguments, got 'prompt'/);
  r = await cli(["serve", "--max-queue", "2000000"]);
  assert.equal(r.code, 2);
  assert.match(r.err, /--max-queue '2000000' is over 1000000/);
  assert.doesNotMatch(r.err, /maxQueue/);
  r = await cli(["serve", "--api-key", ""]);
  assert.equal(r.code, 2);
  r = await cli(["serve", "--help"]);
  assert.equal(r.code, 0);
  assert.match(r.out, /--max-batch N/);
});

Deno.test("serve CLI: the seed model on a loopback port, its key, and SIGTERM finishing the stream in flight", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MOD, "serve", "--port", "0", "--api-key", "k3y", "--quiet"],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let first = "";
    while (!first.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) break;
      first += value;
    }
    const url = /serving gpt2 on (http:\/\/127\.0\.0\.1:\d+)/.exec(first)?.[1];
    assert.ok(url, `the address line: ${first}`);
    const body = (o: Record<string, unknown>) =>
      JSON.stringify({ model: "gpt2", prompt: "Hello, I am", max_tokens: 6, temperature: 0, ...o });
    const json = { "content-type": "application/json" };
    const noKey = await fetch(`${url}/v1/completions`, { method: "POST", headers: json, body: body({}) });
    assert.equal(noKey.status, 401);
    await noKey.body?.cancel();
    const auth = { authorization: "Bearer k3y", ...json };
    const plain = await fetch(`${url}/v1/completions`, { method: "POST", headers: auth, body: body({}) });
    assert.equal((await plain.json()).choices[0].text, " Featureiman Byeswickattribute argue");
    // a stream in flight when SIGTERM comes: it still ends with [DONE], and the process exits 0
    const s = await fetch(`${url}/v1/completions`, { method: "POST", headers: auth, body: body({ stream: true }) });
    const reader = s.body!.pipeThrough(new TextDecoderStream()).getReader();
    let got = (await reader.read()).value ?? "";
    child.kill("SIGTERM");
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      got += value;
    }
    assert.match(got, /data: \[DONE\]\n\n$/);
    const text = got.split("\n\n").filter((e) => e.startsWith("data: {")).map((e) => JSON.parse(e.slice(6)))
      .map((e) => e.choices[0].text).join("");
    assert.equal(text, " Featureiman Byeswickattribute argue");
    const status = await child.status;
    assert.equal(status.code, 0);
    await assert.rejects(fetch(`${url}/health`));
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* it exited */ }
    await child.status;
    await lines.cancel().catch(() => {});
    await child.stderr.cancel().catch(() => {});
  }
});

Deno.test("serve CLI: SIGTERM exits at once when idle and within the grace period with a client trickling its body", async () => {
  const idle = await startServe("--quiet");
  try {
    const t0 = Date.now();
    idle.child.kill("SIGTERM");
    const r = await idle.exit(t0);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.ms < 3000, `an idle server took ${r.ms} ms to exit`);
  } finally {
    idle.kill();
  }
  const s = await startServe("--quiet");
  const c = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
  try {
    await c.write(new TextEncoder().encode(
      "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    ));
    const trickle = setInterval(() => c.write(new TextEncoder().encode(" ")).catch(() => {}), 300);
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    s.child.kill("SIGTERM");
    const r = await s.exit(t0);
    clearInterval(trickle);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.ms < 5000 + 1500, `exited after ${r.ms} ms`);
  } finally {
    c.close();
    s.kill();
  }
});

Deno.test("serve CLI: a second Ctrl-C exits at once, whatever is in flight", async () => {
  const s = await startServe("--quiet");
  try {
    const body = JSON.stringify({ model: "gpt2", prompt: "Hello, I am", max_tokens: 1000, temperature: 0 });
    const res = fetch(`${s.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    }).catch((e) => e);
    await new Promise((r) => setTimeout(r, 1000));
    s.child.kill("SIGINT");
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    s.child.kill("SIGINT");
    const r = await s.exit(t0);
    assert.equal(r.code, 130, r.stderr);
    assert.ok(r.ms < 2000, `exited ${r.ms} ms after the second signal`);
    await res;
  } finally {
    s.kill();
  }
});

Deno.test("serve CLI: an echo request whose client left, then SIGTERM: exit 0 with no uncaught error", async () => {
  const s = await startServe();
  try {
    const ctl = new AbortController();
    const prompt = "The quick brown fox jumps over the lazy dog. ".repeat(20);
    const res = fetch(`${s.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt2", prompt, max_tokens: 200, echo: true, logprobs: 5 }),
      signal: ctl.signal,
    }).catch((e) => e);
    // the HTTP side answers while the worker scores the prompt
    const waits: number[] = [];
    const t0 = Date.now();
    while (Date.now() - t0 < 1500) {
      const h0 = Date.now();
      assert.equal((await fetch(`${s.url}/health`).then((r) => r.json())).status, "ok");
      waits.push(Date.now() - h0);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(Math.max(...waits) < 1000, `/health took up to ${Math.max(...waits)} ms`);
    ctl.abort();
    await res;
    await new Promise((r) => setTimeout(r, 200));
    const t1 = Date.now();
    s.child.kill("SIGTERM");
    const r = await s.exit(t1);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /Uncaught|TypeError/);
    assert.ok(r.ms < 5000 + 1500, `exited after ${r.ms} ms`);
  } finally {
    s.kill();
  }
});
