/**
 * OpenAI's completions API, the request side: a request body checked field by field into what
 * the batcher runs, and the API's error objects (`{"error": {message, type, param, code}}`).
 *
 * @module
 */

import { encode } from "../text/tokenizer.ts";
import { TOP_LOGPROBS } from "../../kernels/mod.ts";
import { describeSampling, type SamplingField, samplingProblem } from "../engine/_sampling.ts";
import { overContext } from "../engine/_context.ts";

/** The request field of each sampling option. */
const PARAMS: Record<SamplingField, string> = {
  temperature: "temperature",
  topK: "top_k",
  topP: "top_p",
  eosId: "eos_id",
  seed: "seed",
};

/** An error the API reports with an HTTP status. */
export class ApiError extends Error {
  /** The HTTP status. */
  readonly status: number;
  /** The request field at fault, if one is. */
  readonly param: string | null;
  /** A short code (`context_length_exceeded`, `invalid_api_key`, ...). */
  readonly code: string | null;
  /** OpenAI's error type. */
  readonly type: string;
  /** Extra response headers. */
  readonly headers: Record<string, string>;

  /**
   * @param status The HTTP status.
   * @param message One sentence: the value and what to do.
   * @param o The field, code, type and headers.
   */
  constructor(
    status: number,
    message: string,
    o: { param?: string; code?: string; type?: string; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.param = o.param ?? null;
    this.code = o.code ?? null;
    this.type = o.type ?? (status >= 500 ? "server_error" : "invalid_request_error");
    this.headers = o.headers ?? {};
  }

  /** The error as the API's JSON response. */
  response(): Response {
    const body = { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
    return Response.json(body, { status: this.status, headers: this.headers });
  }
}

/** OpenAI's per-choice log-probabilities. */
export interface Logprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

/** A completion request, checked. */
export interface CompletionRequest {
  /** The model asked for. */
  model: string;
  /** Each prompt's token ids. */
  prompts: number[][];
  /** Each prompt as text (for `echo`). */
  promptTexts: (string | undefined)[];
  /** New tokens per choice, at most. */
  maxTokens: number;
  /** Temperature; 0 is greedy. */
  temperature: number;
  /** Top-p (only when sampling and below 1). */
  topP?: number;
  /** Top-k (only when sampling). */
  topK?: number;
  /** Seed of the draws. */
  seed?: number;
  /** Strings that end a choice (not included). */
  stop: string[];
  /** Server-sent events. */
  stream: boolean;
  /** A last event with the usage. */
  includeUsage: boolean;
  /** The prompt before the completion. */
  echo: boolean;
  /** Alternatives per token to report (0 to 5), or null for none. */
  logprobs: number | null;
  /** Choices per prompt. */
  n: number;
  /** Answer in the chat shape (`/v1/chat/completions`). */
  chat?: boolean;
}

const KNOWN = new Set([
  "model",
  "prompt",
  "max_tokens",
  "temperature",
  "top_p",
  "top_k",
  "n",
  "stream",
  "stream_options",
  "logprobs",
  "echo",
  "stop",
  "seed",
  "suffix",
  "best_of",
  "presence_penalty",
  "frequency_penalty",
  "logit_bias",
  "user",
]);

/** Most choices (prompts times `n`) one request may ask for. */
export const MAX_CHOICES = 64;

/** Most prompt tokens times choices one request may ask log-probabilities of with `echo`. */
export const MAX_ECHO_LOGPROB_TOKENS = 8192;

/** A value as a message shows it: numbers as they are (`Infinity`, not JSON's `null`), the rest as short JSON. */
function show(v: unknown): string {
  if (typeof v === "number") return Number.isFinite(v) ? String(v) : `${v} (a number too large to use)`;
  return JSON.stringify(v)?.slice(0, 40) ?? String(v);
}

function bad(message: string, param: string, code?: string): ApiError {
  return new ApiError(400, message, { param, code });
}

function num(body: Record<string, unknown>, key: string, def: number, min: number, max: number): number {
  const v = body[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) {
    throw bad(`'${key}' is ${show(v)}; it must be a number from ${min} to ${max}`, key);
  }
  return v;
}

function int(body: Record<string, unknown>, key: string, def: number, min: number, max: number): number {
  const v = num(body, key, def, min, max);
  if (!Number.isInteger(v)) throw bad(`'${key}' is ${v}; it must be an integer`, key);
  return v;
}

function isIds(v: unknown): v is number[] {
  return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "number");
}

/** The prompts of a request: a string, strings, token ids, or lists of ids. */
function prompts(p: unknown, vocab: number): { ids: number[][]; texts: (string | undefined)[] } {
  if (p !== undefined && p !== null && typeof p !== "string" && !(Array.isArray(p) && p.length > 0)) {
    throw bad(`'prompt' is ${show(p)}; give a string, a list of strings, token ids or lists of ids`, "prompt");
  }
  const list: unknown[] = p === undefined || p === null
    ? ["<|endoftext|>"]
    : typeof p === "string" || isIds(p)
    ? [p]
    : p;
  const ids: number[][] = [];
  const texts: (string | undefined)[] = [];
  for (const [i, item] of list.entries()) {
    if (typeof item === "string") {
      if (vocab !== 50257) {
        throw bad(`this model's vocabulary is not GPT-2's, so prompt ${i} must be token ids, not text`, "prompt");
      }
      const t = encode(item);
      if (t.length === 0) throw bad(`prompt ${i} is empty; give at least one token`, "prompt");
      ids.push(t);
      texts.push(item);
    } else if (isIds(item)) {
      for (const id of item) {
        if (!Number.isInteger(id) || id < 0 || id >= vocab) {
          throw bad(`prompt ${i} has token id ${id}, outside [0, ${vocab}); use ids from GPT-2's tokenizer`, "prompt");
        }
      }
      ids.push(item);
      texts.push(undefined);
    } else {
      throw bad(`prompt ${i} is ${show(item)}; give a string, a list of strings, token ids or lists of ids`, "prompt");
    }
  }
  return { ids, texts };
}

/**
 * Checks a request's `model`: given, and this server's.
 *
 * @param model The field as sent.
 * @param name The server's model.
 * @param required Whether it must be given (the tokenizer endpoints take it as optional).
 * @throws {ApiError} 400 when missing; 404 for another model.
 */
export function checkModel(model: unknown, name: string, required = true): void {
  if (!required && (model === undefined || model === null)) return;
  if (typeof model !== "string" || model === "") throw bad("'model' is required; see GET /v1/models", "model");
  if (model !== name) {
    throw new ApiError(404, `The model '${model}' does not exist; this server serves '${name}'`, {
      param: "model",
      code: "model_not_found",
    });
  }
}

/** The body as an object, its model this server's, and no parameter it does not support. */
function checkRequest(body: unknown, name: string): Record<string, unknown> {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw bad("the request body must be a JSON object", "body");
  }
  const b = body as Record<string, unknown>;
  for (const key of Object.keys(b)) {
    if (!KNOWN.has(key)) throw bad(`unknown parameter '${key}'`, key, "unknown_parameter");
  }
  checkModel(b.model, name);
  if (b.suffix !== undefined && b.suffix !== null) throw bad("'suffix' is not supported", "suffix");
  const bias = b.logit_bias;
  if (bias !== undefined && bias !== null) {
    if (typeof bias !== "object" || Array.isArray(bias)) {
      throw bad(`'logit_bias' is ${show(bias)}; it must be an object of token ids to biases`, "logit_bias");
    }
    if (Object.keys(bias).length > 0) throw bad("'logit_bias' is not supported; leave it out", "logit_bias");
  }
  if (b.user !== undefined && b.user !== null && typeof b.user !== "string") {
    throw bad(`'user' is ${show(b.user)}; it must be a string`, "user");
  }
  for (const k of ["presence_penalty", "frequency_penalty"]) {
    if (num(b, k, 0, -2, 2) !== 0) throw bad(`'${k}' is not supported; leave it at 0`, k);
  }
  return b;
}

/** OpenAI's ranges (top_k 0: all tokens; top_p and top_k mean nothing at temperature 0), then the library's rules. */
function samplingOf(
  b: Record<string, unknown>,
  vocab: number,
): { temperature: number; topP?: number; topK?: number; seed?: number } {
  const temperature = num(b, "temperature", 1, 0, 2);
  const topP = num(b, "top_p", 1, 0, 1);
  const topK = int(b, "top_k", 0, 0, vocab);
  const seed = b.seed === undefined || b.seed === null ? undefined : int(b, "seed", 0, 0, 0xffffffff);
  const sampling = {
    temperature,
    topP: temperature > 0 && topP < 1 ? topP : undefined,
    topK: temperature > 0 && topK > 0 ? topK : undefined,
    seed,
  };
  const problem = samplingProblem(sampling, vocab);
  if (problem) throw bad(describeSampling(problem, `'${PARAMS[problem.field]}'`), PARAMS[problem.field]);
  return sampling;
}

/** The stop strings: a string or up to 4, none empty. */
function stopOf(b: Record<string, unknown>): string[] {
  let stop: string[] = [];
  if (typeof b.stop === "string") stop = [b.stop];
  else if (Array.isArray(b.stop) && b.stop.every((s) => typeof s === "string")) stop = b.stop;
  else if (b.stop !== undefined && b.stop !== null) throw bad("'stop' must be a string or a list of strings", "stop");
  if (stop.length > 4) throw bad(`'stop' has ${stop.length} strings; give at most 4`, "stop");
  if (stop.some((s) => s === "")) throw bad("'stop' has an empty string; every stop string needs a character", "stop");
  return stop;
}

/**
 * Checks a completion request body.
 *
 * @param body The parsed JSON.
 * @param model The model's name, vocabulary and context.
 * @returns The request.
 * @throws {ApiError} 400 naming the field; 404 for another model.
 */
export function parseCompletion(
  body: unknown,
  model: { name: string; vocab: number; context: number },
): CompletionRequest {
  const b = checkRequest(body, model.name);
  const { ids, texts } = prompts(b.prompt, model.vocab);
  const n = int(b, "n", 1, 1, MAX_CHOICES);
  const bestOf = int(b, "best_of", n, 1, MAX_CHOICES);
  if (bestOf !== n) throw bad(`'best_of' ${bestOf} is not supported; leave it out or equal to n`, "best_of");
  if (ids.length * n > MAX_CHOICES) {
    throw bad(`${ids.length} prompts times n=${n} is over ${MAX_CHOICES} choices; send fewer at once`, "n");
  }
  const maxTokens = int(b, "max_tokens", 16, 1, model.context);
  for (const [i, p] of ids.entries()) {
    if (overContext(p.length, maxTokens, model.context) > 0) {
      throw bad(
        `This model's maximum context length is ${model.context} tokens, however you requested ${
          p.length + maxTokens
        } tokens (${p.length} in prompt ${i}; ${maxTokens} for the completion); reduce the prompt or max_tokens`,
        "max_tokens",
        "context_length_exceeded",
      );
    }
  }
  const sampling = samplingOf(b, model.vocab);
  const stop = stopOf(b);
  const flag = (k: string) => {
    const v = b[k];
    if (v !== undefined && v !== null && typeof v !== "boolean") throw bad(`'${k}' must be true or false`, k);
    return v === true;
  };
  const stream = flag("stream");
  const so = b.stream_options;
  if (so !== undefined && so !== null && (typeof so !== "object" || Array.isArray(so))) {
    throw bad("'stream_options' must be an object like {\"include_usage\": true}", "stream_options");
  }
  const logprobs = b.logprobs === undefined || b.logprobs === null ? null : int(b, "logprobs", 0, 0, TOP_LOGPROBS);
  const echo = flag("echo");
  const scored = ids.reduce((a, p) => a + p.length, 0) * n;
  if (echo && logprobs !== null && scored > MAX_ECHO_LOGPROB_TOKENS) {
    throw bad(
      `'echo' with 'logprobs' asks for the log-probabilities of ${scored} prompt tokens (prompt tokens times n), over ${MAX_ECHO_LOGPROB_TOKENS}; send shorter or fewer prompts`,
      "echo",
    );
  }
  return {
    model: model.name,
    prompts: ids,
    promptTexts: texts,
    maxTokens,
    ...sampling,
    stop,
    stream,
    includeUsage: stream && (so as { include_usage?: unknown } | undefined)?.include_usage === true,
    echo,
    logprobs,
    n,
  };
}
