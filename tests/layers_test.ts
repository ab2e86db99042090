// The layers of the code stay true: each folder imports only from the folders below it, no file
// takes part in an import cycle, and the engine (kernels, text, gpu, engine, model) names no Deno
// API: files, the environment, permissions, workers and the process are the edge's business
// (src/platform/, the weights loaders, the server and the command line).
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url).pathname;

/** The layers, lowest first; a file may import from its own layer and the ones before it. */
const LAYERS = [
  "kernels",
  "src/text",
  "src/platform",
  "src/gpu",
  "src/weights",
  "src/engine",
  "src/model",
  "src/train",
  "src/serve",
  "src/cli",
];
/** Layers whose code names no `Deno.` API. */
const PORTABLE = ["kernels", "src/text", "src/gpu", "src/engine", "src/model", "src/train"];

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(`${ROOT}${dir}`)) {
    if (e.isDirectory) out.push(...walk(`${dir}/${e.name}`));
    else if (e.name.endsWith(".ts")) out.push(`${dir}/${e.name}`);
  }
  return out;
}

const FILES = [...walk("kernels"), ...walk("src")];

function layerOf(file: string): number {
  const i = LAYERS.findIndex((l) => file === l || file.startsWith(`${l}/`));
  assert.ok(i >= 0, `${file} is in no layer: put it in one of ${LAYERS.join(", ")}`);
  return i;
}

/** Relative imports: static and dynamic, and (with `workers`) the modules it starts as workers. */
function importsOf(file: string, workers = true): string[] {
  const text = Deno.readTextFileSync(`${ROOT}${file}`);
  const dir = file.slice(0, file.lastIndexOf("/"));
  const specs = [
    ...text.matchAll(/(?:^|\n)\s*(?:import|export)[^;]*?from\s+"(\.[^"]+)"/g),
    ...text.matchAll(/import\(\s*"(\.[^"]+)"\s*\)/g),
    ...(workers ? text.matchAll(/new URL\(\s*"(\.[^"]+\.ts)",\s*import\.meta\.url\)/g) : []),
  ].map((m) => m[1]);
  return specs.filter((s) => s.endsWith(".ts")).map((s) => new URL(s, `file:///${dir}/`).pathname.slice(1));
}

/** Code without its comments and strings (so that a JSDoc example may mention `Deno`). */
function code(file: string): string {
  return Deno.readTextFileSync(`${ROOT}${file}`)
    .replace(/\/\*[^]*?\*\//g, "")
    .replace(/(^|[^:])\/\/.*$/gm, "$1");
}

Deno.test("layers: every import points to the importer's layer or one below it", () => {
  const up: string[] = [];
  for (const f of FILES) {
    for (const dep of importsOf(f)) {
      if (dep.startsWith("src/") || dep.startsWith("kernels/")) {
        if (layerOf(dep) > layerOf(f)) up.push(`${f} imports ${dep}`);
      }
    }
  }
  assert.deepEqual(up, [], `imports that go up a layer:\n${up.join("\n")}`);
});

Deno.test("layers: no import cycle among the library's files", () => {
  // a worker's module is a graph of its own: a module that starts a worker which imports it is no cycle
  const graph = new Map(FILES.map((f) => [f, importsOf(f, false).filter((d) => FILES.includes(d))]));
  const state = new Map<string, "open" | "done">();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === "done") return;
    if (state.get(f) === "open") {
      cycles.push([...path.slice(path.indexOf(f)), f].join(" -> "));
      return;
    }
    state.set(f, "open");
    for (const d of graph.get(f)!) visit(d, [...path, f]);
    state.set(f, "done");
  };
  for (const f of FILES) visit(f, []);
  assert.deepEqual(cycles, [], `cycles:\n${cycles.join("\n")}`);
});

Deno.test("layers: the kernels, text, GPU, engine and model code name no Deno API", () => {
  const named = FILES.filter((f) => PORTABLE.some((l) => f.startsWith(`${l}/`)))
    .filter((f) => /\bDeno\./.test(code(f)));
  assert.deepEqual(named, [], `files that name Deno.*:\n${named.join("\n")}`);
});

Deno.test("importing mod.ts loads no node: module and no command line (the web build's rule)", async () => {
  const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json", `${ROOT}mod.ts`] }).output();
  const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { specifier: string; dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[] }[];
  };
  const bySpec = new Map(graph.modules.map((m) => [m.specifier, m]));
  // what an import runs: static code imports only (type imports are erased, dynamic ones wait for a call)
  const seen = new Set<string>();
  const visit = (spec: string) => {
    if (seen.has(spec)) return;
    seen.add(spec);
    for (const d of bySpec.get(spec)?.dependencies ?? []) if (d.code && !d.isDynamic) visit(d.code.specifier);
  };
  visit(new URL("mod.ts", `file://${ROOT}`).href);
  const bad = [...seen].filter((s) => s.startsWith("node:") || s.includes("/src/cli/"));
  assert.deepEqual(bad, []);
  assert.ok(seen.size > 40, `only ${seen.size} modules`);
});
