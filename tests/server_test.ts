// The completions server against the official OpenAI client, on loopback: answers, streams,
// logprobs, stop strings, choices, errors with their statuses, disconnects and a load test.
import assert from "node:assert/strict";
import OpenAI from "openai";
import { GPT_CONFIG_124M } from "../src/weights/config.ts";
import { GPTModel } from "../src/model/model.ts";
import { generate } from "../src/model/generate.ts";
import { decode, encode, END_OF_TEXT } from "../src/text/tokenizer.ts";
import { serve } from "../src/serve/server.ts";
import { client, SMALL } from "./_server.ts";

interface Ask {
  prompt: string;
  max_tokens: number;
  temperature: number;
  seed?: number;
  top_k?: number;
  top_p?: number;
}

/** What the library gives one request alone: choice `row` of generate() on `row + 1` copies. */
async function expected(model: GPTModel, a: Ask, row = 0): Promise<{ text: string; finish: string; tokens: number }> {
  const ids = encode(a.prompt);
  const sampling = a.temperature > 0 ? { temperature: a.temperature, seed: a.seed, topK: a.top_k, topP: a.top_p } : {};
  const out = await generate(model, Array.from({ length: row + 1 }, () => ids), {
    maxNewTokens: a.max_tokens,
    eosId: END_OF_TEXT,
    ...sampling,
  });
  const fresh = out[row].slice(ids.length);
  return { text: decode(fresh), finish: fresh.length < a.max_tokens ? "stop" : "length", tokens: fresh.length };
}

Deno.test("serve: the official client gets the book's seed example, greedy, with logprobs", async () => {
  using model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123 });
  const server = await serve(model, { port: 0 });
  try {
    const c = await client(server.url).completions.create({
      model: "gpt2",
      prompt: "Hello, I am",
      max_tokens: 6,
      temperature: 0,
      logprobs: 3,
    });
    assert.equal(c.object, "text_completion");
    assert.equal(c.model, "gpt2");
    assert.match(c.id, /^cmpl-/);
    assert.equal(c.choices[0].text, " Featureiman Byeswickattribute argue");
    assert.equal(c.choices[0].finish_reason, "length");
    assert.deepEqual(c.usage, {
      prompt_tokens: 4,
      completion_tokens: 6,
      total_tokens: 10,
      prompt_tokens_details: { cached_tokens: 0 },
    });
    const lp = c.choices[0].logprobs!;
    assert.deepEqual(lp.tokens, [" Feature", "iman", " Bye", "swick", "attribute", " argue"]);
    assert.deepEqual(lp.text_offset, [0, 8, 12, 16, 21, 30]);
    lp.top_logprobs!.forEach((top, i) => {
      const entries = Object.entries(top);
      assert.equal(entries.length, 3);
      // greedy: the chosen token is the most likely one
      assert.equal(Math.max(...entries.map((e) => e[1])), lp.token_logprobs![i]);
      assert.ok(lp.token_logprobs![i] < 0);
    });
    // one alternative: the most likely, even when a less likely one has an integer-like text ("677")
    const one = await client(server.url).completions.create({
      model: "gpt2",
      prompt: "Hello, I am",
      max_tokens: 1,
      temperature: 0,
      logprobs: 1,
    });
    assert.deepEqual(Object.keys(one.choices[0].logprobs!.top_logprobs![0]), [" Feature"]);
    const models = await client(server.url).models.list();
    assert.deepEqual(models.data.map((m) => m.id), ["gpt2"]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("serve: plain, streamed, stop, n, echo and id prompts equal the library's generate()", async () => {
  using model = await GPTModel.create(SMALL, { seed: 7 });
  const server = await serve(model, { port: 0, modelName: "small" });
  const api = client(server.url);
  try {
    const greedy: Ask = { prompt: "Every effort moves you", max_tokens: 12, temperature: 0 };
    const want = await expected(model, greedy);
    const plain = await api.completions.create({ model: "small", ...greedy });
    assert.equal(plain.choices[0].text, want.text);
    assert.equal(plain.choices[0].finish_reason, want.finish);
    // streamed: the pieces join to the same text, one finish reason, and [DONE] ends it
    const s = await api.completions.create({
      model: "small",
      ...greedy,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    const finishes: string[] = [];
    let usage;
    for await (const ev of s) {
      for (const ch of ev.choices) {
        text += ch.text;
        if (ch.finish_reason) finishes.push(ch.finish_reason);
      }
      if (ev.usage) usage = ev.usage;
    }
    assert.equal(text, want.text);
    assert.deepEqual(finishes, [want.finish]);
    assert.equal(usage?.completion_tokens, want.tokens);
    // stop: cut before the first stop string, finish "stop"
    const stop = want.text.slice(4, 7);
    const cut = want.text.slice(0, want.text.indexOf(stop));
    const stopped = await api.completions.create({ model: "small", ...greedy, stop: [stop, "\u0000never"] });
    assert.equal(stopped.choices[0].text, cut);
    assert.equal(stopped.choices[0].finish_reason, "stop");
    let streamedCut = "";
    for await (const ev of await api.completions.create({ model: "small", ...greedy, stop, stream: true })) {
      streamedCut += ev.choices.map((c) => c.text).join("");
    }
    assert.equal(streamedCut, cut);
    // n choices of one seed: choice i is row i of a generate() batch
    const sampled: Ask = { prompt: "The GPU", max_tokens: 9, temperature: 0.9, seed: 42, top_k: 50 };
    const many = await api.completions.create({ model: "small", ...sampled, n: 3 });
    assert.equal(many.choices.length, 3);
    for (let i = 0; i < 3; i++) {
      const choice = many.choices.find((c) => c.index === i)!;
      assert.equal(choice.text, (await expected(model, sampled, i)).text, `choice ${i}`);
    }
    // echo, and prompts as token ids and as a list
    const echo = await api.completions.create({ model: "small", ...greedy, echo: true });
    assert.equal(echo.choices[0].text, greedy.prompt + want.text);
    const ids = await api.completions.create({ model: "small", ...greedy, prompt: encode(greedy.prompt) });
    assert.equal(ids.choices[0].text, want.text);
    const list = await api.completions.create({ model: "small", ...greedy, prompt: [greedy.prompt, "Hi"] });
    assert.deepEqual(list.choices.map((c) => c.index), [0, 1]);
    assert.equal(list.choices[0].text, want.text);
    assert.equal(list.choices[1].text, (await expected(model, { ...greedy, prompt: "Hi" })).text);
    assert.equal(list.usage?.prompt_tokens, encode(greedy.prompt).length + 1);
  } finally {
    await server.shutdown();
  }
});

Deno.test("serve: bad input gets OpenAI errors with the right status, never a stack trace", async () => {
  using model = await GPTModel.create(SMALL, { seed: 7 });
  const server = await serve(model, { port: 0, apiKey: "sesame", maxBatch: 1, maxQueue: 0, maxBodyBytes: 4096 });
  const api = client(server.url, "sesame");
  const status = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (e) {
      if (e instanceof OpenAI.APIError) return { status: e.status, error: e.error as Record<string, unknown> };
      throw e;
    }
    throw new Error("expected an error");
  };
  try {
    const base = { model: "gpt2", prompt: "Hi", max_tokens: 4, temperature: 0 };
    let r = await status(api.completions.create({ ...base, temperature: 5 }));
    assert.equal(r.status, 400);
    assert.equal(r.error.param, "temperature");
    r = await status(api.completions.create({ ...base, max_tokens: 64 }));
    assert.equal(r.status, 400);
    assert.equal(r.error.code, "context_length_exceeded");
    r = await status(api.completions.create({ ...base, logprobs: 6 }));
    assert.equal(r.status, 400);
    r = await status(api.completions.create({ ...base, prompt: [[1, 50257]] }));
    assert.equal(r.status, 400);
    r = await status(api.completions.create({ ...base, model: "gpt-4" }));
    assert.equal(r.status, 404);
    assert.equal(r.error.code, "model_not_found");
    r = await status(client(server.url, "wrong").completions.create(base));
    assert.equal(r.status, 401);
    assert.equal((await fetch(`${server.url}/v1/models`).then((x) => x.json())).error.code, "invalid_api_key");
    const auth = { authorization: "Bearer sesame", "content-type": "application/json" };
    const odd = await fetch(`${server.url}/v1/models/%E0%A4%A`, { headers: auth });
    assert.equal(odd.status, 404);
    assert.equal((await odd.json()).error.code, "model_not_found");
    const get = await fetch(`${server.url}/v1/nothing`, { headers: auth });
    assert.equal(get.status, 404);
    assert.equal((await get.json()).error.code, "unknown_url");
    const chat = await fetch(`${server.url}/v1/chat/completions`, { method: "POST", headers: auth, body: "{}" });
    assert.equal(chat.status, 400);
    assert.equal((await chat.json()).error.param, "model");
    const big = await fetch(`${server.url}/v1/completions`, { method: "POST", headers: auth, body: "x".repeat(5000) });
    assert.equal(big.status, 413);
    assert.equal((await big.json()).error.code, "request_too_large");
    const junk = await fetch(`${server.url}/v1/completions`, { method: "POST", headers: auth, body: "{nope" });
    assert.equal(junk.status, 400);
    assert.match((await junk.json()).error.message, /not valid JSON/);
    // one slot and no queue: a second request while the first decodes is refused with 429
    const first = api.completions.create({ ...base, max_tokens: 40 });
    await new Promise((res) => setTimeout(res, 50));
    r = await status(api.completions.create(base));
    assert.equal(r.status, 429);
    assert.equal((await first).choices[0].finish_reason, "length");
    const healthRes = await fetch(`${server.url}/health`);
    assert.equal((await healthRes.json()).status, "ok");
    // no allowOrigin: other web pages get no CORS headers
    assert.equal(healthRes.headers.get("access-control-allow-origin"), null);
  } finally {
    await server.shutdown();
  }
});

Deno.test("serve: a client that disconnects mid-stream frees its row", async () => {
  using model = await GPTModel.create(SMALL, { seed: 7 });
  const server = await serve(model, { port: 0, maxBatch: 2, allowOrigin: "https://example.org" });
  try {
    const pre = await fetch(`${server.url}/v1/completions`, {
      method: "OPTIONS",
      headers: { origin: "https://example.org" },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get("access-control-allow-origin"), "https://example.org");
    await pre.body?.cancel();
    const ctl = new AbortController();
    const res = await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt2", prompt: "Once upon a time", max_tokens: 60, temperature: 0, stream: true }),
      signal: ctl.signal,
    });
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    assert.match(first, /^data: \{/);
    assert.equal(server.batcher.active, 1);
    ctl.abort();
    const t0 = Date.now();
    while (server.batcher.active > 0 && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.batcher.active, 0, "the row was freed");
    assert.ok(server.batcher.steps < 60, `${server.batcher.steps} steps: the generation stopped early`);
  } finally {
    await server.shutdown();
  }
});

Deno.test("serve: a plain request whose client goes away is cancelled too", async () => {
  const cfg = { ...SMALL, context_length: 1024, emb_dim: 128, n_layers: 4 };
  using model = await GPTModel.create(cfg, { seed: 7 });
  const server = await serve(model, { port: 0 });
  try {
    const ctl = new AbortController();
    // the answer's headers come only with the answer: the client leaves while it decodes
    const res = fetch(`${server.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt2", prompt: "Once upon a time", max_tokens: 1000, temperature: 0 }),
      signal: ctl.signal,
    });
    let t0 = Date.now();
    while (server.batcher.steps < 3 && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 20));
    ctl.abort();
    await assert.rejects(res, { name: "AbortError" });
    t0 = Date.now();
    while (server.batcher.active > 0 && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.batcher.active, 0, "the row was freed");
    assert.ok(server.batcher.steps < 1000, `${server.batcher.steps} steps: the generation stopped early`);
    console.log(`stopped after ${server.batcher.steps} of 1000 steps`);
  } finally {
    await server.shutdown();
  }
});

Deno.test("serve: 64 requests from 16 concurrent clients, each equal to its single-request result, nothing lost", async () => {
  using model = await GPTModel.create(SMALL, { seed: 11 });
  const server = await serve(model, { port: 0, maxBatch: 8 });
  const api = client(server.url);
  const words = ["The", "A quiet", "Every effort moves", "In the beginning there was", "GPU", "Deno runs"];
  const asks: Ask[] = Array.from({ length: 64 }, (_, i) => ({
    prompt: words[i % words.length] + " ".repeat(i % 3) + String(i),
    max_tokens: 4 + (i * 7) % 20,
    temperature: i % 2 ? 0.8 : 0,
    ...(i % 2 ? { seed: 1000 + i, top_p: 0.95 } : {}),
  }));
  try {
    const want: { text: string }[] = [];
    for (const a of asks) want.push(await expected(model, a));
    // memory after the first 16 answers (workspace, pipelines and buffers made) against after all 64
    let done = 0;
    let rssAt16 = 0;
    const got: string[] = new Array(64);
    let next = 0;
    let peak = 0;
    const worker = async () => {
      while (next < asks.length) {
        const i = next++;
        if (i % 8 === 5) {
          // streamed, and every 16th request disconnects after its first event
          const s = await api.completions.create({ model: "gpt2", ...asks[i], stream: true });
          let text = "";
          for await (const ev of s) {
            text += ev.choices[0]?.text ?? "";
            if (i % 16 === 13) break;
          }
          got[i] = i % 16 === 13 ? want[i].text : text;
        } else {
          got[i] = (await api.completions.create({ model: "gpt2", ...asks[i] })).choices[0].text;
        }
        peak = Math.max(peak, server.batcher.active);
        if (++done === 16) rssAt16 = Deno.memoryUsage().rss;
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    for (let i = 0; i < 64; i++) assert.equal(got[i], want[i].text, `request ${i}`);
    assert.ok(peak > 1, "requests shared steps");
    const t0 = Date.now();
    while (server.batcher.active + server.batcher.queued > 0 && Date.now() - t0 < 20_000) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(server.batcher.active + server.batcher.queued, 0, "every row freed");
    const grown = (Deno.memoryUsage().rss - rssAt16) / 2 ** 20;
    console.log(`resident memory after 16 answers to after 64: ${grown >= 0 ? "+" : ""}${grown.toFixed(1)} MiB`);
    assert.ok(grown < 48, `memory grew ${grown.toFixed(0)} MiB over the last 48 requests`);
  } finally {
    await server.shutdown();
  }
});

Deno.test("serve: a model loaded in a worker gives the same answers, and /health answers while it decodes", async () => {
  using model = await GPTModel.create(SMALL, { seed: 7 });
  const server = await serve({ config: SMALL, seed: 7 }, { port: 0, modelName: "small" });
  const api = client(server.url);
  try {
    const asks: Ask[] = [
      { prompt: "Every effort moves you", max_tokens: 40, temperature: 0 },
      { prompt: "The GPU", max_tokens: 30, temperature: 0.9, seed: 3, top_k: 50 },
    ];
    const runs = asks.map((a) => api.completions.create({ model: "small", ...a, logprobs: 2 }));
    // while both decode in the worker, this thread answers /health
    const seen: number[] = [];
    while (seen.length < 3) {
      const h = await fetch(`${server.url}/health`).then((r) => r.json());
      assert.equal(h.status, "ok");
      if (h.active > 0) seen.push(h.active);
      await new Promise((r) => setTimeout(r, 5));
    }
    const got = await Promise.all(runs);
    for (let i = 0; i < asks.length; i++) {
      assert.equal(got[i].choices[0].text, (await expected(model, asks[i])).text, `request ${i}`);
      assert.equal(got[i].choices[0].logprobs?.tokens?.length, got[i].usage?.completion_tokens);
    }
    const echo = await api.completions.create({
      model: "small",
      prompt: "Hi there",
      max_tokens: 2,
      temperature: 0,
      echo: true,
      logprobs: 1,
    });
    const lp = echo.choices[0].logprobs!;
    assert.equal(lp.tokens![0], "Hi");
    assert.equal(lp.token_logprobs![0], null);
    assert.ok(lp.token_logprobs!.slice(1).every((x) => x !== null && x < 0));
  } finally {
    await server.shutdown();
  }
});
