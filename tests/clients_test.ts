// Real client libraries against `mod.ts serve` (a small model from a weights file), pinned: the
// Vercel AI SDK (generateText and streamText, chat and completion models) and LangChain
// (ChatOpenAI and OpenAI, invoke and stream). Each must get what the official client gets for the
// same request.
import assert from "node:assert/strict";
import { generateText, streamText } from "ai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { ChatOpenAI, OpenAI as LangChainOpenAI } from "@langchain/openai";
import { writeSafetensors } from "../src/weights/safetensors.ts";
import { client, SMALL, startServe } from "./_server.ts";
import { randomParams, tensorsOf } from "./_helpers.ts";

(globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false;
const PROMPT = "Every effort moves you";

/** `mod.ts serve --weights` of a small model with GPT-2's vocabulary, on a loopback port. */
async function serveSmall(): Promise<{ url: string; stop: () => Promise<void> }> {
  const dir = await Deno.makeTempDir();
  const tensors = Object.fromEntries([...tensorsOf(SMALL, randomParams(SMALL, 5, 1))].map((t) => [t.name, t]));
  await writeSafetensors(`${dir}/small.safetensors`, tensors, "F32", { config: JSON.stringify(SMALL) });
  const server = await startServe("--quiet", "--weights", `${dir}/small.safetensors`);
  const stop = async () => {
    server.child.kill("SIGTERM");
    await server.exit(Date.now());
    await Deno.remove(dir, { recursive: true });
  };
  return { url: server.url, stop };
}

Deno.test("the Vercel AI SDK and LangChain get the official client's answers from mod.ts serve, plain and streamed", async () => {
  const server = await serveSmall();
  try {
    const official = client(server.url);
    const chat = (await official.chat.completions.create({
      model: "gpt2",
      messages: [{ role: "user", content: PROMPT }],
      max_tokens: 8,
      temperature: 0,
    })).choices[0].message.content;
    assert.ok(chat && chat.length > 0);

    // the AI SDK: its completion model sends a prompt of its own making; the body is replayed as it was sent
    const sent: string[] = [];
    const spy: typeof fetch = (url, init) => {
      if (String(url).endsWith("/completions") && !String(url).includes("/chat/")) sent.push(String(init?.body));
      return fetch(url, init);
    };
    const sdk = createOpenAICompatible({ name: "gpt-webgpu", baseURL: `${server.url}/v1`, apiKey: "none", fetch: spy });
    const settings = { prompt: PROMPT, maxOutputTokens: 8, temperature: 0 };
    assert.equal((await generateText({ model: sdk.chatModel("gpt2"), ...settings })).text, chat);
    let streamed = "";
    for await (const t of streamText({ model: sdk.chatModel("gpt2"), ...settings }).textStream) streamed += t;
    assert.equal(streamed, chat);
    const completion = await generateText({ model: sdk.completionModel("gpt2"), ...settings });
    const replay = await official.completions.create(JSON.parse(sent[0]));
    assert.equal(completion.text, replay.choices[0].text);
    assert.equal(completion.usage.outputTokens, replay.usage?.completion_tokens);
    let streamedCompletion = "";
    for await (const t of streamText({ model: sdk.completionModel("gpt2"), ...settings }).textStream) {
      streamedCompletion += t;
    }
    assert.equal(streamedCompletion, completion.text);

    // LangChain
    const configuration = { baseURL: `${server.url}/v1` };
    const lcChat = new ChatOpenAI({ model: "gpt2", apiKey: "none", configuration, temperature: 0, maxTokens: 8 });
    assert.equal((await lcChat.invoke(PROMPT)).content, chat);
    let lcStreamed = "";
    for await (const piece of await lcChat.stream(PROMPT)) lcStreamed += piece.content;
    assert.equal(lcStreamed, chat);
    const text = (await official.completions.create({ model: "gpt2", prompt: PROMPT, max_tokens: 8, temperature: 0 }))
      .choices[0].text;
    const lcText = new LangChainOpenAI({ model: "gpt2", apiKey: "none", configuration, temperature: 0, maxTokens: 8 });
    assert.equal(await lcText.invoke(PROMPT), text);
    let lcTextStreamed = "";
    for await (const piece of await lcText.stream(PROMPT)) lcTextStreamed += piece;
    assert.equal(lcTextStreamed, text);
  } finally {
    await server.stop();
  }
});
