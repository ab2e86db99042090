// The completions API's request checks: each bad field is a 400 naming it, defaults are OpenAI's.
import assert from "node:assert/strict";
import { ApiError, parseCompletion } from "../src/serve/_openai_request.ts";
import { encode } from "../src/text/tokenizer.ts";

const MODEL = { name: "gpt2", vocab: 50257, context: 1024 };

function fails(body: unknown, param: string | null, status = 400, model = MODEL): ApiError {
  try {
    parseCompletion(body, model);
  } catch (e) {
    assert.ok(e instanceof ApiError, `${e}`);
    assert.equal(e.status, status, e.message);
    assert.equal(e.param, param, e.message);
    return e;
  }
  throw new Error(`accepted ${JSON.stringify(body)}`);
}

Deno.test("parseCompletion: OpenAI's defaults and every prompt form", () => {
  const r = parseCompletion({ model: "gpt2", prompt: "Hello, I am" }, MODEL);
  assert.deepEqual(r.prompts, [[15496, 11, 314, 716]]);
  assert.equal(r.maxTokens, 16);
  assert.equal(r.temperature, 1);
  assert.equal(r.n, 1);
  assert.equal(r.logprobs, null);
  assert.deepEqual(r.stop, []);
  assert.equal(r.stream, false);
  assert.deepEqual(parseCompletion({ model: "gpt2" }, MODEL).prompts, [encode("<|endoftext|>")]);
  assert.deepEqual(parseCompletion({ model: "gpt2", prompt: ["a", "b"] }, MODEL).prompts, [encode("a"), encode("b")]);
  assert.deepEqual(parseCompletion({ model: "gpt2", prompt: [1, 2] }, MODEL).prompts, [[1, 2]]);
  assert.deepEqual(parseCompletion({ model: "gpt2", prompt: [[1], [2, 3]] }, MODEL).prompts, [[1], [2, 3]]);
  // top_p and top_k only matter when sampling
  const g = parseCompletion({ model: "gpt2", prompt: "x", temperature: 0, top_p: 0.5, top_k: 3 }, MODEL);
  assert.equal(g.topP, undefined);
  assert.equal(g.topK, undefined);
  const s = parseCompletion({
    model: "gpt2",
    prompt: "x",
    top_p: 0.5,
    top_k: 3,
    stop: "\n",
    stream: true,
    stream_options: { include_usage: true },
  }, MODEL);
  assert.equal(s.topP, 0.5);
  assert.equal(s.topK, 3);
  assert.deepEqual(s.stop, ["\n"]);
  assert.equal(s.includeUsage, true);
});

Deno.test("parseCompletion: each bad field is a 400 that names it", () => {
  const base = { model: "gpt2", prompt: "x" };
  fails([], "body");
  fails({ ...base, model: undefined }, "model");
  assert.equal(fails({ ...base, model: "gpt-4" }, "model", 404).code, "model_not_found");
  assert.equal(fails({ ...base, tempreature: 1 }, "tempreature").code, "unknown_parameter");
  fails({ ...base, max_tokens: 0 }, "max_tokens");
  fails({ ...base, max_tokens: 1.5 }, "max_tokens");
  assert.equal(
    fails({ ...base, prompt: "x ".repeat(1020), max_tokens: 10 }, "max_tokens").code,
    "context_length_exceeded",
  );
  fails({ ...base, temperature: -1 }, "temperature");
  fails({ ...base, temperature: "hot" }, "temperature");
  fails({ ...base, top_p: 1.5 }, "top_p");
  fails({ ...base, top_k: -1 }, "top_k");
  fails({ ...base, n: 0 }, "n");
  fails({ ...base, n: 65 }, "n");
  fails({ ...base, prompt: ["a", "b", "c"], n: 30 }, "n");
  fails({ ...base, best_of: 3 }, "best_of");
  fails({ ...base, logprobs: 6 }, "logprobs");
  fails({ ...base, stop: ["a", "b", "c", "d", "e"] }, "stop");
  fails({ ...base, stop: [""] }, "stop");
  fails({ ...base, stop: 3 }, "stop");
  fails({ ...base, seed: -1 }, "seed");
  fails({ ...base, seed: 2 ** 32 }, "seed");
  fails({ ...base, stream: "yes" }, "stream");
  fails({ ...base, suffix: "end" }, "suffix");
  fails({ ...base, logit_bias: { "50256": -100 } }, "logit_bias");
  fails({ ...base, presence_penalty: 0.5 }, "presence_penalty");
  fails({ ...base, prompt: "" }, "prompt");
  fails({ ...base, prompt: [] }, "prompt");
  fails({ ...base, prompt: [1, 50257] }, "prompt");
  fails({ ...base, prompt: [{ text: "x" }] }, "prompt");
  // text needs GPT-2's vocabulary
  fails(base, "prompt", 400, { ...MODEL, vocab: 97 });
});
