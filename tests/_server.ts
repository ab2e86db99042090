// What the server tests share: a small model with GPT-2's vocabulary (fast, and its text goes
// through the real tokenizer) and the official client pointed at a server, with no retries.
import OpenAI from "openai";

/** A small model with GPT-2's vocabulary. */
export const SMALL = {
  vocab_size: 50257,
  context_length: 64,
  emb_dim: 64,
  n_heads: 4,
  n_layers: 2,
  drop_rate: 0,
  qkv_bias: true,
};

/** The official client for a server's URL: no retries, two minutes a request. */
export function client(url: string, apiKey = "none"): OpenAI {
  return new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0, timeout: 120_000 });
}
