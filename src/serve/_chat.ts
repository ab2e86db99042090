/**
 * `/v1/chat/completions` on a completion model: the messages are rendered to one prompt by a chat
 * template (Jinja, as Hugging Face ships them, rendered by `@huggingface/jinja`), then run as a
 * completion; the answer is put in the chat shape (a `message`, or `delta`s when streamed, and
 * `logprobs.content`).
 *
 * @module
 */

import { Template } from "@huggingface/jinja";
import { ApiError, checkModel, type CompletionRequest, type Logprobs, parseCompletion } from "./_openai_request.ts";

/**
 * The default template: plain text a base model continues naturally. A system message is a
 * paragraph of its own, then `User: ...` and `Assistant: ...` lines, and the prompt ends with
 * `Assistant:`; generation stops at a new `User:` line ({@linkcode DEFAULT_CHAT_STOP}).
 */
export const DEFAULT_CHAT_TEMPLATE: string = "{% for message in messages %}" +
  "{% if message['role'] == 'system' %}{{ message['content'] }}\n\n" +
  "{% elif message['role'] == 'user' %}User: {{ message['content'] }}\n" +
  "{% else %}Assistant: {{ message['content'] }}\n{% endif %}" +
  "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}";

/** Where the default template's answer ends: the model starting the user's next line. */
export const DEFAULT_CHAT_STOP = "\nUser:";

/** One message, checked: its role and its text. */
export interface ChatMessage {
  /** `system`, `user` or `assistant` (`developer` is taken as `system`). */
  role: "system" | "user" | "assistant";
  /** The text. */
  content: string;
}

/** A chat template, parsed once. */
export class ChatTemplate {
  /** The Jinja source. */
  readonly source: string;
  /** Whether it is {@linkcode DEFAULT_CHAT_TEMPLATE}. */
  readonly isDefault: boolean;
  #template: Template;

  /**
   * Parses a template.
   *
   * @param source Jinja source (default {@linkcode DEFAULT_CHAT_TEMPLATE}).
   * @throws {Error} When it does not parse, with the parser's message.
   */
  constructor(source?: string) {
    this.source = source ?? DEFAULT_CHAT_TEMPLATE;
    this.isDefault = source === undefined;
    try {
      this.#template = new Template(this.source);
    } catch (e) {
      throw new Error(`The chat template does not parse: ${(e as Error).message}`);
    }
  }

  /**
   * The prompt for a conversation.
   *
   * @param messages The conversation.
   * @param addGenerationPrompt End with the assistant's turn beginning (default true).
   * @returns The text.
   * @throws {ApiError} 400 when the template fails on these messages (a template may raise errors of its own).
   */
  render(messages: ChatMessage[], addGenerationPrompt = true): string {
    try {
      return this.#template.render({
        messages,
        add_generation_prompt: addGenerationPrompt,
        bos_token: "<|endoftext|>",
        eos_token: "<|endoftext|>",
      });
    } catch (e) {
      throw new ApiError(400, `The chat template failed on these messages: ${(e as Error).message}`, {
        param: "messages",
      });
    }
  }
}

const bad = (message: string, param: string) => new ApiError(400, message, { param });

/** Fields that ask for what a plain text model cannot do. */
const REFUSED: Record<string, string> = {
  tools: "this model cannot call tools; leave 'tools' out",
  tool_choice: "this model cannot call tools; leave 'tool_choice' out",
  functions: "this model cannot call functions; leave 'functions' out",
  function_call: "this model cannot call functions; leave 'function_call' out",
  parallel_tool_calls: "this model cannot call tools; leave 'parallel_tool_calls' out",
  audio: "this model has no audio output; leave 'audio' out",
  modalities: "this model answers in text only; leave 'modalities' out",
};

/** The text of a message's content: a string, or text parts. */
function contentText(content: unknown, i: number): string {
  if (typeof content === "string") return content;
  if (content === null || content === undefined) return "";
  if (!Array.isArray(content)) {
    throw bad(`'messages[${i}].content' must be a string or a list of text parts`, `messages[${i}].content`);
  }
  return content.map((part, k) => {
    const p = part as { type?: unknown; text?: unknown };
    if (p?.type === "text" && typeof p.text === "string") return p.text;
    throw bad(
      `'messages[${i}].content[${k}]' is a ${JSON.stringify(p?.type)} part; this model takes only text parts`,
      `messages[${i}].content`,
    );
  }).join("");
}

/**
 * The messages of a request, checked.
 *
 * @param raw `messages` as sent.
 * @returns The conversation.
 * @throws {ApiError} 400 naming the message.
 */
export function parseMessages(raw: unknown): ChatMessage[] {
  if (!Array.isArray(raw) || raw.length === 0) {
    throw bad("'messages' must be a non-empty list of {role, content} objects", "messages");
  }
  return raw.map((m, i) => {
    const msg = m as { role?: unknown; content?: unknown; tool_calls?: unknown };
    if (msg === null || typeof msg !== "object") throw bad(`'messages[${i}]' must be an object`, `messages[${i}]`);
    const role = msg.role === "developer" ? "system" : msg.role;
    if (role !== "system" && role !== "user" && role !== "assistant") {
      throw bad(
        `'messages[${i}].role' is ${JSON.stringify(msg.role)}; this model takes system, user and assistant messages`,
        `messages[${i}].role`,
      );
    }
    if (msg.tool_calls !== undefined && msg.tool_calls !== null) {
      throw bad(`'messages[${i}].tool_calls': this model cannot call tools`, `messages[${i}].tool_calls`);
    }
    return { role, content: contentText(msg.content, i) };
  });
}

/** What a chat request adds to a completion request. */
export interface ChatRequest extends CompletionRequest {
  /** The rendered prompt. */
  promptText: string;
}

/**
 * Checks a chat completion request and renders its prompt.
 *
 * @param body The parsed JSON.
 * @param model The model's name, vocabulary and context.
 * @param template The chat template.
 * @param encode The tokenizer.
 * @returns The request, as a completion of the rendered prompt.
 * @throws {ApiError} 400 naming the field; 404 for another model.
 */
export function parseChat(
  body: unknown,
  model: { name: string; vocab: number; context: number },
  template: ChatTemplate,
  encode: (text: string) => number[],
): ChatRequest {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw bad("the request body must be a JSON object", "body");
  }
  const {
    messages,
    logprobs,
    top_logprobs,
    max_completion_tokens,
    response_format,
    ...rest
  } = body as Record<string, unknown>;
  checkModel(rest.model, model.name);
  for (const [k, why] of Object.entries(REFUSED)) if (k in rest && rest[k] !== null) throw bad(why, k);
  const format = (response_format as { type?: unknown } | undefined | null)?.type;
  if (response_format !== undefined && response_format !== null && format !== "text") {
    throw bad(
      `'response_format' ${JSON.stringify(format)} is not supported; this model writes plain text`,
      "response_format",
    );
  }
  if (logprobs !== undefined && logprobs !== null && typeof logprobs !== "boolean") {
    throw bad("'logprobs' must be true or false", "logprobs");
  }
  if (top_logprobs !== undefined && top_logprobs !== null && logprobs !== true) {
    throw bad("'top_logprobs' needs 'logprobs': true", "top_logprobs");
  }
  const top = top_logprobs ?? 0;
  if (typeof top !== "number" || !Number.isInteger(top) || top < 0 || top > 5) {
    throw bad(`'top_logprobs' is ${JSON.stringify(top)}; this server gives 0 to 5 alternatives`, "top_logprobs");
  }
  const promptText = template.render(parseMessages(messages));
  const completion: Record<string, unknown> = { ...rest, prompt: encode(promptText) };
  const ids = completion.prompt as number[];
  // as vLLM does: without a limit, up to the end of the context
  completion.max_tokens = max_completion_tokens ?? rest.max_tokens ?? Math.max(1, model.context - ids.length);
  if (logprobs === true) completion.logprobs = top;
  const r = parseCompletion(completion, model);
  if (template.isDefault) r.stop = [...r.stop, DEFAULT_CHAT_STOP];
  return { ...r, chat: true, promptText };
}

/** A token's text as the chat shape gives it: with its UTF-8 bytes. */
function tokenEntry(token: string, logprob: number) {
  return { token, logprob, bytes: [...new TextEncoder().encode(token)] };
}

/**
 * The chat shape of a choice's log-probabilities: `{ content: [{ token, logprob, bytes, top_logprobs }] }`.
 *
 * @param lp The completions shape.
 * @returns The chat shape, or null.
 */
export function chatLogprobs(lp: Logprobs | null): { content: unknown[] } | null {
  if (!lp) return null;
  return {
    content: lp.tokens.map((t, i) => ({
      ...tokenEntry(t, lp.token_logprobs[i] ?? 0),
      top_logprobs: Object.entries(lp.top_logprobs[i] ?? {}).sort((a, b) => b[1] - a[1]).map(([k, v]) =>
        tokenEntry(k, v)
      ),
    })),
  };
}

/**
 * A whole chat answer's choice.
 *
 * @param index The choice.
 * @param text Its text.
 * @param lp Its log-probabilities (completions shape), or null.
 * @param finish Why it ended.
 * @returns `{ index, message, logprobs, finish_reason }`.
 */
export function chatChoice(index: number, text: string, lp: Logprobs | null, finish: string | null) {
  return { index, message: { role: "assistant", content: text }, logprobs: chatLogprobs(lp), finish_reason: finish };
}

/**
 * A streamed chat answer's piece.
 *
 * @param index The choice.
 * @param text New text.
 * @param lp Its log-probabilities (completions shape), or null.
 * @param finish Why it ended, on the last piece.
 * @returns `{ index, delta, logprobs, finish_reason }`.
 */
export function chatChunk(index: number, text: string, lp: Logprobs | null, finish: string | null) {
  return { index, delta: text ? { content: text } : {}, logprobs: chatLogprobs(lp), finish_reason: finish };
}
