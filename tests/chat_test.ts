// The chat endpoint, the tokenizer endpoints and the metrics, through the official client and plain
// fetch: a chat answer is the completion of its rendered prompt; streamed deltas add up to it;
// log-probabilities come in the chat shape; a Hugging Face template renders as Jinja does.
import assert from "node:assert/strict";
import parsePrometheus from "parse-prometheus-text-format";
import { GPTModel } from "../src/model/model.ts";
import { serve } from "../src/serve/server.ts";
import { DEFAULT_CHAT_TEMPLATE } from "../src/serve/_chat.ts";
import { decode, encode } from "../src/text/tokenizer.ts";
import { client, SMALL } from "./_server.ts";

const MESSAGES = [
  { role: "system" as const, content: "You are terse." },
  { role: "user" as const, content: "Every effort moves you" },
];
const PROMPT = "You are terse.\n\nUser: Every effort moves you\nAssistant:";
// ChatML, as Hugging Face models ship it in tokenizer_config.json
const CHATML = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + " +
  "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

Deno.test("chat: the official client's chat API answers the completion of the rendered prompt, plain, streamed and with logprobs", async () => {
  using model = await GPTModel.create(SMALL, { seed: 5 });
  const server = await serve(model, { port: 0 });
  try {
    const api = client(server.url);
    const base = { model: "gpt2", messages: MESSAGES, max_tokens: 12, temperature: 0 };
    const chat = await api.chat.completions.create(base);
    const plain = await api.completions.create({ model: "gpt2", prompt: PROMPT, max_tokens: 12, temperature: 0 });
    const cut = plain.choices[0].text.split("\nUser:")[0];
    assert.equal(chat.object, "chat.completion");
    assert.equal(chat.choices[0].message.role, "assistant");
    assert.equal(chat.choices[0].message.content, cut);
    assert.equal(chat.usage?.prompt_tokens, encode(PROMPT).length);
    // streamed: a role chunk first, then deltas that add up to the same text, usage at the end
    const pieces: string[] = [];
    let role: string | undefined;
    let usage: unknown;
    for await (
      const ch of await api.chat.completions.create({ ...base, stream: true, stream_options: { include_usage: true } })
    ) {
      assert.equal(ch.object, "chat.completion.chunk");
      if (ch.usage) usage = ch.usage;
      for (const c of ch.choices) {
        role ??= c.delta.role;
        if (c.delta.content) pieces.push(c.delta.content);
      }
    }
    assert.equal(role, "assistant");
    assert.equal(pieces.join(""), cut);
    assert.ok(usage);
    // log-probabilities: the chosen token is the most likely one (greedy), with 3 alternatives and bytes
    const lp = await api.chat.completions.create({ ...base, max_tokens: 4, logprobs: true, top_logprobs: 3 });
    const content = lp.choices[0].logprobs!.content!;
    assert.equal(content.map((t) => t.token).join(""), lp.choices[0].message.content);
    for (const t of content) {
      assert.equal(t.top_logprobs.length, 3);
      assert.equal(t.top_logprobs[0].logprob, t.logprob);
      assert.deepEqual(t.bytes, [...new TextEncoder().encode(t.token)]);
    }
    // n, seed, max_completion_tokens, text parts
    const two = await api.chat.completions.create({
      model: "gpt2",
      messages: [{ role: "user", content: [{ type: "text", text: "Hello" }, { type: "text", text: ", I am" }] }],
      max_completion_tokens: 5,
      temperature: 0.9,
      seed: 3,
      n: 2,
    });
    assert.equal(two.choices.length, 2);
    assert.ok(two.usage!.completion_tokens <= 10);
  } finally {
    await server.shutdown();
  }
});

Deno.test("chat: what a text model cannot do is a 400 naming the field", async () => {
  using model = await GPTModel.create(SMALL, { seed: 5 });
  const server = await serve(model, { port: 0 });
  try {
    const post = async (body: Record<string, unknown>) => {
      const r = await fetch(`${server.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "gpt2", messages: MESSAGES, ...body }),
      });
      return { status: r.status, param: (await r.json()).error?.param };
    };
    const tool = { type: "function", function: { name: "f", parameters: {} } };
    assert.deepEqual(await post({ tools: [tool] }), { status: 400, param: "tools" });
    assert.deepEqual(await post({ response_format: { type: "json_object" } }), {
      status: 400,
      param: "response_format",
    });
    assert.deepEqual(await post({ top_logprobs: 2 }), { status: 400, param: "top_logprobs" });
    assert.deepEqual(
      await post({ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] }),
      {
        status: 400,
        param: "messages[0].content",
      },
    );
    assert.deepEqual(await post({ messages: [{ role: "tool", content: "x" }] }), {
      status: 400,
      param: "messages[0].role",
    });
    assert.deepEqual(await post({ messages: [] }), { status: 400, param: "messages" });
  } finally {
    await server.shutdown();
  }
});

Deno.test("tokenizer endpoints answer as vLLM's do, with the server's chat template; /metrics parses as Prometheus text", async () => {
  using model = await GPTModel.create(SMALL, { seed: 5 });
  const server = await serve(model, { port: 0, chatTemplate: CHATML });
  const post = (path: string, body: unknown) =>
    fetch(`${server.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: await r.json() }));
  try {
    const info = await fetch(`${server.url}/tokenizer_info`).then((r) => r.json());
    assert.equal(info.eos_token, "<|endoftext|>");
    assert.equal(info.model_max_length, SMALL.context_length);
    assert.equal(info.chat_template, CHATML);
    const text = "Every effort moves you";
    const t = await post("/tokenize", { model: "gpt2", prompt: text, add_special_tokens: true });
    assert.deepEqual(t.body, { count: 4, max_model_len: 64, tokens: encode(text), token_strs: null });
    const m = await post("/tokenize", { messages: MESSAGES });
    const chatml =
      "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nEvery effort moves you<|im_end|>\n" +
      "<|im_start|>assistant\n";
    assert.deepEqual(m.body.tokens, encode(chatml));
    assert.deepEqual((await post("/detokenize", { tokens: encode(chatml) })).body, { prompt: chatml });
    assert.equal((await post("/detokenize", { tokens: [50257] })).status, 400);
    assert.equal(decode((await post("/v1/tokenize", { prompt: "x" })).body.tokens), "x");
    // two requests, then the counters
    const api = client(server.url);
    await api.chat.completions.create({ model: "gpt2", messages: MESSAGES, max_tokens: 3, temperature: 0 });
    await api.completions.create({ model: "gpt2", prompt: "Hello", max_tokens: 5, temperature: 0 });
    const res = await fetch(`${server.url}/metrics`);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const families = parsePrometheus(await res.text()) as {
      name: string;
      type: string;
      metrics: Record<string, unknown>[];
    }[];
    const family = (name: string) => families.find((f) => f.name === name)!;
    const value = (name: string) => family(name).metrics.reduce((a, x) => a + Number(x.value), 0);
    assert.equal(value("gpt_webgpu_requests_total"), 2);
    assert.equal(value("gpt_webgpu_generation_tokens_total"), 8);
    assert.equal(value("gpt_webgpu_prompt_tokens_total"), encode(chatml).length + 1);
    assert.equal(family("gpt_webgpu_time_to_first_token_seconds").type, "HISTOGRAM");
    assert.equal(Number(family("gpt_webgpu_time_to_first_token_seconds").metrics[0].count), 2);
    assert.equal(Number(family("gpt_webgpu_inter_token_latency_seconds").metrics[0].count), 6);
    assert.equal(value("gpt_webgpu_requests_running"), 0);
    assert.equal(value("gpt_webgpu_cache_slots"), 8);
  } finally {
    await server.shutdown();
  }
});

Deno.test("the default chat template is plain text, and a template that does not parse is refused at start", async () => {
  assert.ok(DEFAULT_CHAT_TEMPLATE.includes("User: "));
  using model = await GPTModel.create(SMALL, { seed: 5 });
  await assert.rejects(serve(model, { port: 0, chatTemplate: "{% for %}" }), /chat template does not parse/);
});

Deno.test("prompt cache: a chat's next turn reuses the history's keys and values, answers as a server without the cache does, and says so in usage and /metrics", async () => {
  using model = await GPTModel.create(SMALL, { seed: 5 });
  const turns = async (promptCache: boolean) => {
    const server = await serve(model, { port: 0, promptCache });
    try {
      const api = client(server.url);
      const messages: { role: "user" | "assistant"; content: string }[] = [];
      const out: { text: string; cached: number }[] = [];
      for (const ask of ["Hello", "Every effort moves you", "and then?"]) {
        messages.push({ role: "user", content: ask });
        const r = await api.chat.completions.create({
          model: "gpt2",
          messages,
          max_tokens: 4,
          temperature: 0.7,
          seed: 1,
        });
        const text = r.choices[0].message.content ?? "";
        messages.push({ role: "assistant", content: text });
        out.push({ text, cached: r.usage?.prompt_tokens_details?.cached_tokens ?? -1 });
      }
      const metrics = await fetch(`${server.url}/metrics`).then((r) => r.text());
      return { out, hits: Number(/^gpt_webgpu_prompt_cache_hits_total (\d+)/m.exec(metrics)?.[1]) };
    } finally {
      await server.shutdown();
    }
  };
  const warm = await turns(true);
  const cold = await turns(false);
  assert.deepEqual(warm.out.map((t) => t.text), cold.out.map((t) => t.text));
  assert.deepEqual(cold.out.map((t) => t.cached), [0, 0, 0]);
  assert.equal(warm.out[0].cached, 0);
  assert.ok(warm.out[1].cached > 3 && warm.out[2].cached > warm.out[1].cached, JSON.stringify(warm.out));
  assert.deepEqual([warm.hits, cold.hits], [2, 0]);
});
