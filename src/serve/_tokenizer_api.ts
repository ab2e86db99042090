/**
 * The tokenizer endpoints as vLLM serves them, which lm-evaluation-harness and other tools probe
 * for: `POST /tokenize` (a prompt or chat messages to ids), `POST /detokenize` (ids to text) and
 * `GET /tokenizer_info` (the special tokens, the context, the chat template).
 *
 * @module
 */

import { decode, encode } from "../text/tokenizer.ts";
import { ApiError, checkModel } from "./_openai_request.ts";
import { type ChatTemplate, parseMessages } from "./_chat.ts";

const END = "<|endoftext|>";
const bad = (message: string, param: string) => new ApiError(400, message, { param });

function object(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw bad("the request body must be a JSON object", "body");
  }
  return body as Record<string, unknown>;
}

/**
 * `POST /tokenize`: `{ prompt }` or `{ messages, add_generation_prompt }` (through the chat
 * template); `add_special_tokens` adds nothing for GPT-2, which has no start token.
 *
 * @returns `{ count, max_model_len, tokens, token_strs }`.
 */
export function tokenize(
  body: unknown,
  o: { name: string; context: number; template: ChatTemplate },
): Record<string, unknown> {
  const b = object(body);
  checkModel(b.model, o.name, false);
  for (const k of ["add_special_tokens", "add_generation_prompt", "return_token_strs"]) {
    if (b[k] !== undefined && b[k] !== null && typeof b[k] !== "boolean") throw bad(`'${k}' must be true or false`, k);
  }
  let text: string;
  if (b.messages !== undefined) {
    text = o.template.render(parseMessages(b.messages), b.add_generation_prompt !== false);
  } else if (typeof b.prompt === "string") {
    text = b.prompt;
  } else {
    throw bad("send 'prompt' (a string) or 'messages' (a chat)", "prompt");
  }
  const tokens = encode(text);
  return {
    count: tokens.length,
    max_model_len: o.context,
    tokens,
    token_strs: b.return_token_strs === true ? tokens.map((t) => decode([t])) : null,
  };
}

/**
 * `POST /detokenize`: `{ tokens }` to `{ prompt }`.
 *
 * @returns The text.
 */
export function detokenize(body: unknown, o: { name: string; vocab: number }): Record<string, unknown> {
  const b = object(body);
  checkModel(b.model, o.name, false);
  const t = b.tokens;
  if (!Array.isArray(t) || !t.every((x) => Number.isInteger(x) && x >= 0 && x < o.vocab)) {
    throw bad(`'tokens' must be a list of token ids from 0 to ${o.vocab - 1}`, "tokens");
  }
  return { prompt: decode(t) };
}

/**
 * `GET /tokenizer_info`: what a client needs to tokenize as the server does.
 *
 * @returns The tokenizer's description.
 */
export function tokenizerInfo(o: { context: number; template: ChatTemplate }): Record<string, unknown> {
  return {
    tokenizer_class: "GPT2Tokenizer",
    eos_token: END,
    bos_token: END,
    unk_token: END,
    pad_token: null,
    add_bos_token: false,
    model_max_length: o.context,
    chat_template: o.template.source,
  };
}
