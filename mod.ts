/**
 * A GPT text generator for Deno on WebGPU: the `GPTModel` of "Build a Large Language Model
 * (From Scratch)", with hand-written WGSL kernels, seed-exact with PyTorch.
 *
 * ```ts ignore
 * import { GPT_CONFIG_124M, GPTModel, generateTextSimple, encode, decode } from "./mod.ts";
 * using model = await GPTModel.create(GPT_CONFIG_124M, { seed: 123 });
 * const out = await generateTextSimple(model, [encode("Hello, I am")], 6, GPT_CONFIG_124M.context_length);
 * console.log(decode(out[0])); // Hello, I am Featureiman Byeswickattribute argue
 * ```
 *
 * Run it: `deno run mod.ts "Hello, I am"` (no permissions needed). Importing this module touches
 * no `Deno` or `node:` API, so it runs in browsers and Node too (pass `{ gpu }` from `npm:webgpu`
 * there). Utilities have subpath exports: `./safetensors`, `./torch-random` and `./reference` (the
 * model in plain TypeScript); the command line is `./cli`.
 *
 * @module
 */

export * from "./src/weights/mod.ts";
export * from "./src/model/mod.ts";
export * from "./src/engine/mod.ts";
export * from "./src/gpu/mod.ts";
export * from "./src/train/mod.ts";
export * from "./src/serve/mod.ts";
export * from "./src/text/mod.ts";

// the command line, loaded only when this module is the program (it needs Deno's APIs)
if (import.meta.main && "Deno" in globalThis) {
  const { main } = await import("./src/cli/cli.ts");
  Deno.exitCode = await main();
}
