// The completions server as an attacker, a flaky client and an operator would try it, on
// loopback: time limits on raw sockets, answers cut short by a shutdown or a failure, Host and
// Origin checks, methods, keys, echo with logprobs, and every request check — with the official
// `openai` client where a client's view matters.
import assert from "node:assert/strict";
import OpenAI from "openai";
import { GPT_CONFIG_124M } from "../src/weights/config.ts";
import { GPTModel } from "../src/model/model.ts";
import { encode } from "../src/text/tokenizer.ts";
import { serve } from "../src/serve/server.ts";
import { client, SMALL } from "./_server.ts";
import { MAX_ECHO_LOGPROB_TOKENS } from "../src/serve/_openai_request.ts";

const LONG = { ...SMALL, context_length: 1024, emb_dim: 128, n_layers: 4 };
const enc = new TextEncoder();
const dec = new TextDecoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes `text` on a fresh connection and reads until the server closes it or `ms` pass. */
async function raw(port: number, text: string, ms = 5000): Promise<{ text: string; closed: boolean; after: number }> {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  const t0 = Date.now();
  await c.write(enc.encode(text));
  let out = "";
  const buf = new Uint8Array(1 << 16);
  while (true) {
    const n = await Promise.race([c.read(buf).catch(() => null), sleep(ms - (Date.now() - t0)).then(() => -1)]);
    if (n === null || n === -1) {
      try {
        c.close();
      } catch { /* closed */ }
      return { text: out, closed: n === null, after: Date.now() - t0 };
    }
    out += dec.decode(buf.subarray(0, n));
  }
}

const post = (path: string, body: string, headers: Record<string, string> = {}) =>
  `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${
    enc.encode(body).length
  }\r\nConnection: close\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n${body}`;

Deno.test("serve: trickled headers, a trickled body and idle connections are closed after their time limits", async () => {
  using model = await GPTModel.create(SMALL, { seed: 7 });
  const limits = { headerTimeoutMs: 400, bodyTimeoutMs: 400, idleTimeoutMs: 400 };
  const server = await serve(model, { port: 0, limits });
  const port = server.addr.port;
  try {
    // headers, a line every 100 ms: cut at 400 ms
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    await c.write(enc.encode("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
    const t0 = Date.now();
    const trickle = setInterval(() => c.write(enc.encode("X-A: b\r\n")).catch(() => {}), 100);
    const got = await Promise.race([c.read(new Uint8Array(1024)).catch(() => null), sleep(5000).then(() => -1)]);
    clearInterval(trickle);
    c.close();
    assert.notEqual(got, -1, "the connection was closed");
    assert.ok(Date.now() - t0 < 2000, `closed after ${Date.now() - t0} ms`);
    // a body of 100 bytes, two of them sent: 408, closed
    const body = await raw(port, "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nab");
    assert.match(body.text, /^HTTP\/1\.1 408 /);
    assert.match(body.text, /"code":"request_timeout"/);
    assert.ok(body.closed && body.after < 2000, `408 after ${body.after} ms`);
    // an idle connection, and one idle after an answer, are closed
    const idle = await raw(port, "");
    assert.ok(idle.closed && idle.after < 2000, `idle closed after ${idle.after} ms`);
    const kept = await raw(port, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert.match(kept.text, /^HTTP\/1\.1 200 /);
    assert.ok(kept.closed && kept.after < 2000, `kept-alive closed after ${kept.after} ms`);
  } finally {
    await server.shutdown();
  }
});

Deno.test("serve: a shutdown cuts answers short as a 503 and a stream's error event (with usage), never as finished", async () => {
  using model = await GPTModel.create(LONG, { seed: 7 });
  const server = await serve(model, { port: 0 });
  const api = client(server.url);
  const ask = { model: "gpt2", prompt: "Once upon a time", max_tokens: 900, temperature: 0 };
  const plain = api.completions.create(ask).then(() => undefined, (e) => e);
  const stream = await api.completions.create({ ...ask, stream: true });
  const events: OpenAI.Completion[] = [];
  const streamed = (async () => {
    for await (const e of stream) events.push(e);
  })().then(() => undefined, (e) => e);
  const rawStream = await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...ask, stream: true, stream_options: { include_usage: true } }),
  });
  const rawText = rawStream.text();
  const t0 = Date.now();
  while (server.batcher.steps < 4 && Date.now() - t0 < 30_000) await sleep(20);
  const s0 = Date.now();
  await server.shutdown(300);
  assert.ok(Date.now() - s0 < 300 + 1500, `shutdown took ${Date.now() - s0} ms`);
  const e = await plain;
  assert.ok(e instanceof OpenAI.APIError, `the plain answer: ${e}`);
  assert.equal(e.status, 503);
  assert.equal((e.error as { code: string }).code, "shutting_down");
  const se = await streamed;
  assert.ok(se instanceof OpenAI.APIError, `the streamed answer: ${se}`);
  assert.ok(events.length > 0 && events.every((x) => x.choices[0]?.finish_reason !== "stop"));
  const text = await rawText;
  assert.doesNotMatch(text, /\[DONE\]/);
  assert.doesNotMatch(text, /"finish_reason":"(stop|length)"/);
  const last = text.trim().split("\n\n").map((l) => JSON.parse(l.slice(6)));
  assert.equal(last.at(-1).error.code, "shutting_down");
  const usage = last.at(-2).usage;
  assert.ok(usage.completion_tokens > 0 && usage.completion_tokens < 900, JSON.stringify(usage));
});

Deno.test("serve: a model failure mid-answer is a 500 the official client raises, plain or streamed, and says nothing internal", async () => {
  const model = await GPTModel.create(LONG, { seed: 7 });
  const logged: unknown[] = [];
  const server = await serve(model, { port: 0, onError: (e) => logged.push(e) });
  const api = client(server.url);
  try {
    const ask = { model: "gpt2", prompt: "Once upon a time", max_tokens: 900, temperature: 0 };
    const plain = api.completions.create(ask).then(() => undefined, (e) => e);
    const stream = await api.completions.create({ ...ask, stream: true });
    const streamed = (async () => {
      for await (const _ of stream) { /* until it fails */ }
    })().then(() => undefined, (e) => e);
    // well past the two seconds after which the old server had already sent 200
    const t0 = Date.now();
    while ((server.batcher.steps < 4 || Date.now() - t0 < 2500) && Date.now() - t0 < 30_000) await sleep(20);
    model.destroy();
    const e = await plain;
    assert.ok(e instanceof OpenAI.InternalServerError, `the plain answer: ${e}`);
    assert.match(e.message, /failed to make this answer; its log has the details/);
    assert.ok(await streamed instanceof OpenAI.APIError);
    assert.ok(logged.length > 0, "the failure is logged in full");
  } finally {
    await server.shutdown(0);
  }
});

Deno.test("serve: with stop, the logprobs tokens end where the text ends", async () => {
  using model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123 });
  const server = await serve(model, { port: 0 });
  try {
    const ask = { model: "gpt2", prompt: "Hello, I am", max_tokens: 6, temperature: 0, logprobs: 2, stop: "wick" };
    const c = await client(server.url).completions.create(ask);
    assert.equal(c.choices[0].text, " Featureiman Byes");
    assert.equal(c.choices[0].finish_reason, "stop");
    const lp = c.choices[0].logprobs!;
    assert.equal(lp.tokens!.join(""), " Featureiman Byes");
    assert.deepEqual(lp.text_offset, [0, 8, 12, 16]);
    let streamed = "";
    const tokens: string[] = [];
    for await (const e of await client(server.url).completions.create({ ...ask, stream: true })) {
      streamed += e.choices[0].text;
      tokens.push(...e.choices[0].logprobs?.tokens ?? []);
    }
    assert.equal(streamed, " Featureiman Byes");
    assert.equal(tokens.join(""), streamed);
  } finally {
    await server.shutdown();
  }
});

Deno.test("serve: only this server's Host and its own or allowed Origins; POST bodies must be JSON; keys in constant time, any case of Bearer", async () => {
  using model = await GPTModel.create(SMALL, { seed: 7 });
  const server = await serve(model, { port: 0, apiKey: "k3y" });
  const open = await serve(model, { port: 0, allowOrigin: "https://app.example" });
  const port = server.addr.port;
  const body = JSON.stringify({ model: "gpt2", prompt: "Hi", max_tokens: 2, temperature: 0 });
  const ok = { authorization: "Bearer k3y" };
  try {
    // DNS rebinding: the attacker's name in Host
    const rebound = await raw(
      port,
      post("/v1/completions", body, ok).replace("Host: 127.0.0.1", "Host: evil.example:80"),
    );
    assert.match(rebound.text, /^HTTP\/1\.1 403 [^]*"code":"forbidden_host"/);
    for (const host of ["localhost", `127.0.0.1:${port}`, `[::1]:${port}`, `LOCALHOST:${port}`]) {
      const r = await raw(port, `GET /health HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      assert.match(r.text, /^HTTP\/1\.1 200 /, host);
    }
    // another page, even with a valid key and JSON
    const cross = await raw(port, post("/v1/completions", body, { ...ok, Origin: "https://evil.example" }));
    assert.match(cross.text, /^HTTP\/1\.1 403 [^]*"code":"forbidden_origin"/);
    assert.doesNotMatch(cross.text, /access-control-allow-origin/i);
    // a form's text/plain POST (no preflight) is refused before it runs
    const form = await raw(port, post("/v1/completions", body, ok).replace("application/json", "text/plain"));
    assert.match(form.text, /^HTTP\/1\.1 415 /);
    // the server's own page
    const own = await raw(port, post("/v1/completions", body, { ...ok, Origin: `http://127.0.0.1` }));
    assert.match(own.text, /^HTTP\/1\.1 200 /);
    // Bearer in any case; a wrong key of any length
    const lower = await raw(port, post("/v1/completions", body, { authorization: "bearer k3y" }));
    assert.match(lower.text, /^HTTP\/1\.1 200 /);
    for (const key of ["k3", "k3z", "k3yy", ""]) {
      const bad = await raw(port, post("/v1/completions", body, { authorization: `Bearer ${key}` }));
      assert.match(bad.text, /^HTTP\/1\.1 401 /, key);
    }
    // --allow-origin: that origin gets CORS headers, others 403
    const allowed = await raw(open.addr.port, post("/v1/completions", body, { Origin: "https://app.example" }));
    assert.match(allowed.text, /^HTTP\/1\.1 200 [^]*access-control-allow-origin: https:\/\/app\.example/);
    const other = await raw(open.addr.port, post("/v1/completions", body, { Origin: "https://evil.example" }));
    assert.match(other.text, /^HTTP\/1\.1 403 /);
  } finally {
    await server.shutdown();
    await open.shutdown();
  }
});

Deno.test("serve: HEAD answers like GET without a body; a wrong method is 405 with Allow; internal errors are never 400", async () => {
  using model = await GPTModel.create(SMALL, { seed: 7 });
  const server = await serve(model, { port: 0, maxBodyBytes: 2 << 20 });
  const port = server.addr.port;
  try {
    const head = await raw(port, "HEAD /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    assert.match(head.text, /^HTTP\/1\.1 200 [^]*content-length: [1-9]\d*\r\n/);
    assert.ok(head.text.endsWith("\r\n\r\n"), "no body");
    const page = await raw(port, "HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    assert.match(page.text, /^HTTP\/1\.1 200 [^]*text\/html/);
    for (
      const [method, path, allow] of [["DELETE", "/v1/completions", "POST"], ["GET", "/v1/completions", "POST"], [
        "POST",
        "/health",
        "GET, HEAD",
      ]]
    ) {
      const r = await raw(port, `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      assert.match(r.text, new RegExp(`^HTTP/1\\.1 405 [^]*allow: ${allow}\r\n`), `${method} ${path}`);
    }
    // a word of 700,000 characters: the context check, not a stack overflow reported as 400
    const api = client(server.url);
    await assert.rejects(
      api.completions.create({ model: "gpt2", prompt: "a".repeat(700_000), max_tokens: 1 }),
      (e: unknown) =>
        e instanceof OpenAI.BadRequestError && (e.error as { code: string }).code === "context_length_exceeded",
    );
  } finally {
    await server.shutdown();
  }
});

Deno.test("serve: each malformed field is one 400 naming it and its value", async () => {
  using model = await GPTModel.create(SMALL, { seed: 7 });
  const server = await serve(model, { port: 0 });
  const port = server.addr.port;
  const ask = async (fields: string) => {
    const r = await raw(port, post("/v1/completions", `{"model": "gpt2", "max_tokens": 2, ${fields}}`));
    const status = Number(/^HTTP\/1\.1 (\d+)/.exec(r.text)?.[1]);
    return { status, error: JSON.parse(r.text.slice(r.text.indexOf("\r\n\r\n") + 4)).error };
  };
  try {
    const cases: [string, string, RegExp][] = [
      ['"prompt": "Hi", "temperature": 1e999', "temperature", /'temperature' is Infinity/],
      ['"prompt": 5', "prompt", /'prompt' is 5; give a string/],
      ['"prompt": {}', "prompt", /'prompt' is \{\}/],
      ['"prompt": "Hi", "logit_bias": 5', "logit_bias", /'logit_bias' is 5; it must be an object/],
      ['"prompt": "Hi", "logit_bias": {"50256": -100}', "logit_bias", /not supported/],
      ['"prompt": "Hi", "user": {}', "user", /'user' is \{\}; it must be a string/],
    ];
    for (const [fields, param, message] of cases) {
      const r = await ask(fields);
      assert.equal(r.status, 400, fields);
      assert.equal(r.error.param, param, fields);
      assert.match(r.error.message, message, fields);
    }
    assert.equal((await ask('"prompt": "Hi", "user": "someone", "logit_bias": {}')).status, 200);
  } finally {
    await server.shutdown();
  }
});

Deno.test("serve: echo with logprobs matches forward() once per prompt, and over the limit is a 400", async () => {
  using model = await GPTModel.create(LONG, { seed: 7 });
  const server = await serve(model, { port: 0 });
  try {
    const prompt = "The quick brown fox jumps";
    const ids = encode(prompt);
    const c = await client(server.url).completions.create({
      model: "gpt2",
      prompt,
      max_tokens: 1,
      temperature: 0,
      echo: true,
      logprobs: 3,
      n: 3,
    });
    // the reference: log-softmax of forward()'s logits, sorted whole
    const V = LONG.vocab_size;
    const logits = await model.forward([ids]);
    for (const choice of c.choices) {
      const lp = choice.logprobs!;
      assert.equal(lp.token_logprobs![0], null);
      for (let t = 1; t < ids.length; t++) {
        const row = Array.from(logits.subarray((t - 1) * V, t * V));
        const m = Math.max(...row);
        const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
        assert.ok(Math.abs(lp.token_logprobs![t]! - (row[ids[t]] - lse)) < 1e-4, `token ${t}`);
        const top = row.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, 3);
        assert.deepEqual(
          Object.values(lp.top_logprobs![t]!).map((x) => Math.round(x * 1e3)),
          top.map(([v]) => Math.round((v - lse) * 1e3)),
        );
      }
    }
    const long = Array.from({ length: 1000 }, (_, i) => i % 500);
    const n = Math.ceil((MAX_ECHO_LOGPROB_TOKENS + 1) / 1000);
    await assert.rejects(
      client(server.url).completions.create({ model: "gpt2", prompt: long, max_tokens: 1, echo: true, logprobs: 1, n }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && (e.error as { param: string }).param === "echo",
    );
  } finally {
    await server.shutdown();
  }
});

Deno.test("serve: n that can never fit is a 400 and holds no slot; a full queue is a 429 that holds none", async () => {
  using model = await GPTModel.create(SMALL, { seed: 7 });
  const server = await serve(model, { port: 0, maxBatch: 2, maxQueue: 1 });
  const api = client(server.url);
  try {
    const base = { model: "gpt2", prompt: "Hi", max_tokens: 4, temperature: 0 };
    await assert.rejects(
      api.completions.create({ ...base, n: 4 }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && /holds at most 3 requests/.test((e as Error).message),
    );
    assert.equal(server.batcher.active + server.batcher.queued, 0);
    // right after, the most that fits is served
    const c = await api.completions.create({ ...base, n: 3 });
    assert.equal(c.choices.length, 3);
    const long = api.completions.create({ ...base, max_tokens: 40, n: 2 });
    await sleep(50);
    await assert.rejects(api.completions.create({ ...base, n: 2 }), OpenAI.RateLimitError);
    assert.equal(server.batcher.queued + server.batcher.active, 2, "the refused request took no slot");
    await long;
  } finally {
    await server.shutdown();
  }
});
