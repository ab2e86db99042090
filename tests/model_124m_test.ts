// The seed-123 124M model of the book: PyTorch's logits and generated ids.
import assert from "node:assert/strict";
import { GPT_CONFIG_124M } from "../src/weights/config.ts";
import { GPTModel } from "../src/model/model.ts";
import { generate, generateTextSimple } from "../src/model/generate.ts";
import { decode, encode } from "../src/text/tokenizer.ts";
import { fixture } from "./_helpers.ts";

interface Ref {
  prompt_ids: number[][];
  generated_ids: number[][];
  last_logits_top10: { ids: number[]; values: number[] }[];
  last_logits_first8: number[][];
}

Deno.test("GPTModel.create(GPT_CONFIG_124M, { seed: 123 }) reproduces the book's output", async () => {
  const ref = fixture<Ref>("gpt124m_seed123.json");
  const prompt = encode("Hello, I am");
  assert.deepEqual([prompt], ref.prompt_ids);
  using model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123 });
  const V = GPT_CONFIG_124M.vocab_size;
  const logits = await model.forward(ref.prompt_ids);
  assert.equal(logits.length, 4 * V);
  const last = logits.subarray(3 * V);
  const order = [...last.keys()].sort((a, b) => last[b] - last[a]).slice(0, 10);
  assert.deepEqual(order, ref.last_logits_top10[0].ids);
  ref.last_logits_top10[0].values.forEach((v, i) =>
    assert.ok(Math.abs(last[order[i]] - v) <= 1e-4, `top ${i}: ${last[order[i]]} != ${v}`)
  );
  ref.last_logits_first8[0].forEach((v, i) =>
    assert.ok(Math.abs(last[i] - v) <= 1e-4, `logit ${i}: ${last[i]} != ${v}`)
  );

  const out = await generateTextSimple(model, ref.prompt_ids, 6, GPT_CONFIG_124M.context_length);
  assert.deepEqual(out, ref.generated_ids);
  assert.equal(decode(out[0]), "Hello, I am Featureiman Byeswickattribute argue");
  assert.deepEqual(await generate(model, ref.prompt_ids, { maxNewTokens: 6 }), ref.generated_ids);
  // a batch of two equal rows gives the same row twice
  assert.deepEqual(await generateTextSimple(model, [prompt, prompt], 2, 1024), [
    ref.generated_ids[0].slice(0, 6),
    ref.generated_ids[0].slice(0, 6),
  ]);
});

Deno.test("GPTModel with 16-bit weights gives the seed example's ids", async () => {
  const ref = fixture<Ref>("gpt124m_seed123.json");
  using model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123, dtype: "f16" });
  assert.deepEqual(await generate(model, ref.prompt_ids, { maxNewTokens: 6 }), ref.generated_ids);
});
