/**
 * `deno run -A mod.ts serve`: the OpenAI-compatible completions server on the command line.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { type CompletionServer, serve } from "../serve/server.ts";
import { readEnv } from "../platform/env.ts";
import { dtypeOption, intOption, UsageError } from "./_common.ts";
import type { ModelSource } from "../serve/_load.ts";

const USAGE_LINE = "Usage: deno run -A mod.ts serve [options]";

/** The help of the serve command. */
export const SERVE_USAGE = `${USAGE_LINE}

Serves the model with OpenAI's completions API (POST /v1/completions, GET /v1/models, GET /health)
and a playground page at /, batching concurrent requests. Without --weights or --model the model
is the seed-123 untrained one. Ctrl-C stops it: requests in flight get 5 seconds to finish, then
are cut short (a 503, or an error event); a second Ctrl-C exits at once. Only requests whose Host
is this server's address and whose Origin is its own page (or --allow-origin) are answered.

Options:
  --port N               port (default 8000)
  --host ADDR            address to listen on (default 127.0.0.1: this machine only)
  --weights PATH         a .safetensors file or a directory with model.safetensors
  --model NAME           a GPT-2 model from the Hugging Face hub (gpt2, gpt2-medium, ...)
  --revision REV         the revision of --model (default main)
  --offline              use only the hub cache
  --dtype f32|f16|q8     how weights are stored (default f32)
  --name NAME            the model's name in the API (default: --model's, else gpt2)
  --max-batch N          requests decoding at once, 1 to 64 (default 8)
  --max-queue N          requests waiting before new ones get 429 (default 64)
  --allow-origin ORIGIN  let web pages from ORIGIN ("*": any) call the API (default: only the playground)
  --allow-host NAME      also answer requests for this host name (e.g. behind a proxy; repeatable)
  --api-key KEY          require 'Authorization: Bearer KEY' on /v1/ (default: the GPT_WEBGPU_API_KEY
                         environment variable when set, else no key)
  --chat-template FILE   Jinja chat template for /v1/chat/completions, or a tokenizer_config.json
                         holding one (default: plain "User:" and "Assistant:" lines)
  --no-prompt-cache      compute every prompt in full (default: reuse the keys and values of a
                         prompt's start that an earlier request left in a free slot)
  --seed N               seed of the untrained model (default 123)
  --quiet                no progress on stderr
  -h, --help`;

/** The serve command's options, checked. */
type ServeArgs = ModelSource & {
  port: number;
  host: string;
  name?: string;
  maxBatch: number;
  maxQueue: number;
  apiKey?: string;
  allowOrigin?: string;
  allowHosts: string[];
  chatTemplate?: string;
  promptCache: boolean;
};

/**
 * Checks the serve command's arguments.
 *
 * @param args The arguments after `serve`.
 * @returns The options, or `"help"`.
 * @throws {UsageError} On a bad argument.
 */
function parseServeArgs(args: string[]): ServeArgs | "help" {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      port: { type: "string" },
      host: { type: "string" },
      weights: { type: "string" },
      model: { type: "string" },
      revision: { type: "string" },
      offline: { type: "boolean" },
      dtype: { type: "string" },
      name: { type: "string" },
      "max-batch": { type: "string" },
      "max-queue": { type: "string" },
      "api-key": { type: "string" },
      "allow-origin": { type: "string" },
      "allow-host": { type: "string", multiple: true },
      "chat-template": { type: "string" },
      "no-prompt-cache": { type: "boolean" },
      seed: { type: "string" },
      quiet: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return "help";
  if (positionals.length > 0) throw new UsageError(`serve takes no arguments, got '${positionals[0]}'`);
  if (values.weights !== undefined && values.model !== undefined) {
    throw new UsageError("give either --weights or --model, not both");
  }
  const port = intOption("port", values.port, 8000, 0);
  if (port > 65535) throw new UsageError(`--port '${port}' is over 65535`);
  const maxBatch = intOption("max-batch", values["max-batch"], 8, 1);
  if (maxBatch > 64) throw new UsageError(`--max-batch '${maxBatch}' is over 64`);
  if (Number(values["max-queue"] ?? 0) > 1e6) {
    throw new UsageError(`--max-queue '${values["max-queue"]}' is over 1000000`);
  }
  if (values["api-key"] === "") throw new UsageError("--api-key is empty; give a key or leave the option out");
  return {
    port,
    host: values.host ?? "127.0.0.1",
    name: values.name,
    weights: values.weights,
    model: values.model,
    revision: values.revision,
    offline: values.offline,
    dtype: dtypeOption("dtype", values.dtype, "f32"),
    maxBatch,
    maxQueue: intOption("max-queue", values["max-queue"], 64, 0),
    allowHosts: values["allow-host"] ?? [],
    apiKey: values["api-key"] ?? readEnv("GPT_WEBGPU_API_KEY"),
    allowOrigin: values["allow-origin"],
    chatTemplate: values["chat-template"],
    promptCache: !values["no-prompt-cache"],
    seed: intOption("seed", values.seed, 123, 0),
    quiet: Boolean(values.quiet),
  };
}

/**
 * Runs the serve command until SIGINT or SIGTERM.
 *
 * @param args The arguments after `serve`.
 * @param out Where the address goes.
 * @param err Where errors and progress go.
 * @returns The exit code: 0 after a signal, 1 on a runtime error, 2 on a usage error.
 */
export async function serveCommand(
  args: string[],
  out: (s: string) => void,
  err: (s: string) => void,
): Promise<number> {
  let o: ServeArgs;
  try {
    const parsed = parseServeArgs(args);
    if (parsed === "help") {
      out(SERVE_USAGE);
      return 0;
    }
    o = parsed;
  } catch (e) {
    err(`error: ${(e as Error).message.replace(/\.$/, "")}\n${USAGE_LINE}`);
    return 2;
  }
  return await runServer(o, out, err);
}

/** Serves until a signal: the first stops it gracefully, a second at once. */
async function runServer(o: ServeArgs, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  // the signals are taken before the address is printed: a stop that comes at once is graceful too
  let server: CompletionServer | undefined;
  let signals = 0;
  const stop = () => {
    // a second signal: stop now
    if (signals++ > 0) Deno.exit(130);
    if (!o.quiet) err("stopping: finishing the requests in flight (Ctrl-C again to stop now)");
    server?.shutdown();
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  try {
    const chatTemplate = o.chatTemplate === undefined ? undefined : await readTemplate(o.chatTemplate);
    // the model runs in a worker, so that requests are answered while it works
    server = await serve({
      hub: o.model,
      revision: o.revision,
      offline: o.offline,
      weights: o.weights,
      dtype: o.dtype,
      seed: o.seed,
      quiet: o.quiet,
    }, {
      port: o.port,
      hostname: o.host,
      modelName: o.name ?? o.model ?? "gpt2",
      apiKey: o.apiKey,
      allowOrigin: o.allowOrigin,
      allowHosts: o.allowHosts,
      chatTemplate,
      promptCache: o.promptCache,
      onError: (e) => err(`error: ${(e as Error)?.stack ?? e}`),
      maxBatch: o.maxBatch,
      maxQueue: o.maxQueue,
      onLog: o.quiet ? undefined : err,
      onListen: (a) => {
        const host = a.hostname.includes(":") ? `[${a.hostname}]` : a.hostname;
        out(`serving ${o.name ?? o.model ?? "gpt2"} on http://${host}:${a.port} (playground at /, API at /v1)`);
      },
    });
    // a signal while the model loaded: stop as soon as it is up
    if (signals > 0) server.shutdown();
    await server.finished;
    return 0;
  } catch (e) {
    err(`error: ${(e as Error).message}`);
    return 1;
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
  }
}

/** A chat template file: Jinja source, or a `tokenizer_config.json` with a `chat_template` string. */
async function readTemplate(path: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`cannot read --chat-template '${path}' (${(e as Error).message})`);
  }
  if (!path.endsWith(".json")) return text;
  let t: unknown;
  try {
    t = JSON.parse(text).chat_template;
  } catch (e) {
    throw new Error(`--chat-template '${path}' is not JSON (${(e as Error).message})`);
  }
  if (typeof t !== "string") {
    throw new Error(`--chat-template '${path}' has no 'chat_template' string; pass the template itself`);
  }
  return t;
}
