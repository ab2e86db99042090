// A replay of lm-evaluation-harness's `local-completions` flow against the server: it probes the
// remote tokenizer, tokenizes through it, scores loglikelihood requests (token-id prompts, echo,
// logprobs 1, max_tokens 1) as lm-eval sums them, and runs generate_until with its stop list. The
// loglikelihoods are PyTorch's (tests/testdata/loss.json, the seed-123 124M model).
import assert from "node:assert/strict";
import { GPT_CONFIG_124M } from "../src/weights/config.ts";
import { GPTModel } from "../src/model/model.ts";
import { serve } from "../src/serve/server.ts";
import { fixture } from "./_helpers.ts";

interface LossCase {
  model: string;
  inputs: number[][];
  targets: number[][];
  token_losses: number[];
}

Deno.test("lm-eval's local-completions flow: remote tokenizer, loglikelihoods equal to PyTorch's, greedy flags, generate_until", async () => {
  const c = fixture<{ cases: LossCase[] }>("loss.json").cases.find((x) => x.model === "gpt124m_seed123")!;
  using model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123 });
  const server = await serve(model, { port: 0 });
  const post = async (path: string, body: unknown) => {
    const r = await fetch(`${server.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    assert.equal(r.status, 200, `${path}: ${r.status}`);
    return await r.json();
  };
  try {
    // the probe: both answer, so lm-eval tokenizes through the server
    const info = await fetch(`${server.url}/tokenizer_info`).then((r) => r.json());
    assert.equal(info.eos_token, "<|endoftext|>");
    const text = "Every effort moves you";
    const ids = (await post("/tokenize", { prompt: text, add_special_tokens: false })).tokens as number[];
    assert.equal((await post("/detokenize", { tokens: ids })).prompt, text);
    // loglikelihood(context, continuation) for three splits of the fixture's sentence, in one batch
    const full = [...c.inputs[0], c.targets[0].at(-1)!];
    const splits = [1, 4, 8];
    const res = await post("/v1/completions", {
      model: "gpt2",
      prompt: splits.map(() => full),
      echo: true,
      logprobs: 1,
      max_tokens: 1,
      temperature: 0,
      seed: 1234,
    });
    assert.equal(res.choices.length, splits.length);
    for (const [i, ctxlen] of splits.entries()) {
      const lp = res.choices[i].logprobs;
      // lm-eval: the continuation's tokens are prompt positions ctxlen..end (the last entry is the new token)
      const cont = lp.token_logprobs.slice(ctxlen, -1) as number[];
      assert.equal(cont.length, full.length - ctxlen);
      const ours = cont.reduce((a, b) => a + b, 0);
      const torch = -c.token_losses.slice(ctxlen - 1).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(ours - torch) < 1e-3, `split ${ctxlen}: ${ours} against PyTorch's ${torch}`);
      // greedy: each continuation token is its position's most likely one
      const tops = lp.top_logprobs.slice(ctxlen, -1) as Record<string, number>[];
      const greedy = tops.every((t, k) => Math.max(...Object.values(t)) <= cont[k] + 1e-6);
      const logits = await model.forward([full.slice(0, -1)]);
      const V = GPT_CONFIG_124M.vocab_size;
      const argmaxes = full.slice(ctxlen).map((_, k) => {
        const row = logits.subarray((ctxlen - 1 + k) * V, (ctxlen + k) * V);
        return row.indexOf(Math.max(...row));
      });
      assert.equal(greedy, argmaxes.every((a, k) => a === full[ctxlen + k]), `split ${ctxlen}: greedy flag`);
    }
    // the seed example's continuation is greedy by construction: every flag true
    const seed = [15496, 11, 314, 716, 27018, 24086, 47843, 30961, 42348, 7267];
    const g = await post("/v1/completions", { model: "gpt2", prompt: seed, echo: true, logprobs: 1, max_tokens: 1 });
    const lp = g.choices[0].logprobs;
    const flags = (lp.top_logprobs.slice(4, -1) as Record<string, number>[]).map((t, k) =>
      Math.max(...Object.values(t)) <= lp.token_logprobs[4 + k] + 1e-6
    );
    assert.deepEqual(flags, [true, true, true, true, true, true]);
    // generate_until: text prompts, the stop list, max_tokens
    const gen = await post("/v1/completions", {
      model: "gpt2",
      prompt: ["Hello, I am", "Every effort moves you"],
      max_tokens: 12,
      temperature: 0,
      stop: ["\n\n", "argue"],
      seed: 1234,
    });
    assert.equal(gen.choices[0].text, " Featureiman Byeswickattribute ");
    assert.equal(gen.choices[0].finish_reason, "stop");
    assert.equal(gen.choices.length, 2);
  } finally {
    await server.shutdown();
  }
});
