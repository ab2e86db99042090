/**
 * `deno task build`: the web build in `dist/` (or `--out DIR`): `mod.js`, the library as one ES
 * module for pages and Node (no Deno or `node:` API at import; the command line is left out),
 * `init_worker.js`, the module worker that draws seeded parameters beside it, and `index.html`,
 * the playground, which runs the model in the page when no server answers.
 *
 *   deno task build [--out DIR]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { PLAYGROUND_HTML } from "../src/serve/_playground.ts";

const ROOT = new URL("../", import.meta.url);

async function bundle(entry: string, out: string, extra: string[] = []): Promise<void> {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--platform", "browser", "--format", "esm", ...extra, "-o", out, entry],
    cwd: ROOT,
    stdout: "inherit",
    stderr: "piped",
  }).output();
  if (code !== 0) throw new Error(`deno bundle ${entry} failed:\n${new TextDecoder().decode(stderr)}`);
}

/**
 * Writes the web build.
 *
 * @param out The folder (made if missing).
 * @returns The files written.
 */
export async function build(out: string): Promise<string[]> {
  await Deno.mkdir(out, { recursive: true });
  const files = [`${out}/mod.js`, `${out}/init_worker.js`, `${out}/index.html`];
  // the command line and the server's metrics library need Deno's or Node's APIs: loaded only there
  await bundle("mod.ts", files[0], ["--external", "./src/cli/cli.ts", "--external", "prom-client"]);
  await bundle("src/weights/init_worker.ts", files[1]);
  await Deno.writeTextFile(files[2], PLAYGROUND_HTML);
  // Node reads .js files here as ES modules
  await Deno.writeTextFile(`${out}/package.json`, `{ "type": "module" }\n`);
  return files;
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { out: { type: "string", default: "dist" } } });
  const out = values.out.startsWith("/") ? values.out : new URL(values.out, ROOT).pathname;
  for (const f of await build(out)) console.log(`${f} (${(await Deno.stat(f)).size} bytes)`);
}
