// `deno run -A mod.ts serve`: a real process on a loopback port, its key, usage errors, and a
// graceful stop on SIGTERM with a stream in flight.
import assert from "node:assert/strict";
import { main } from "../src/cli.ts";

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
