import assert from "node:assert/strict";
import { main, VERSION } from "../src/cli/cli.ts";
import { seededParameters } from "../src/weights/init.ts";
import { validateConfig } from "../src/weights/config.ts";
import { writeSafetensors } from "../src/weights/safetensors.ts";
import { decode } from "../src/text/tokenizer.ts";

async function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const streamed: string[] = [];
  const code = await main(args, (s) => out.push(s), (s) => err.push(s), (s) => streamed.push(s));
  return { code, out: out.join("\n"), err: err.join("\n"), streamed: streamed.join("") };
}

/** A small random model with GPT-2's vocabulary, as a book-format safetensors file. */
async function smallWeights(): Promise<string> {
  const cfg = {
    vocab_size: 50257,
    context_length: 64,
    emb_dim: 16,
    n_heads: 2,
    n_layers: 1,
    drop_rate: 0,
    qkv_bias: false,
  };
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const t of seededParameters(validateConfig(cfg), 4)) {
    const prev = t.row0 ? tensors[t.name].data : new Float32Array(0);
    const data = new Float32Array(prev.length + t.data.length);
    data.set(prev);
    data.set(t.data, prev.length);
    tensors[t.name] = { shape: t.shape, data };
  }
  const path = await Deno.makeTempFile({ suffix: ".safetensors" });
  await writeSafetensors(path, tensors, "F32", { config: JSON.stringify(cfg) });
  return path;
}

Deno.test("main() prints what the book's notebook prints for the seed example", async () => {
  const r = await run(["Hello, I am"]);
  assert.equal(r.code, 0, r.err);
  assert.equal(
    r.out,
    [
      "encoded: [15496, 11, 314, 716]",
      "encoded_tensor.shape: [1, 4]",
      "Output: [[15496, 11, 314, 716, 27018, 24086, 47843, 30961, 42348, 7267]]",
      "Output length: 10",
      "Hello, I am Featureiman Byeswickattribute argue",
    ].join("\n"),
  );
});

Deno.test("main() --help, --version and usage errors", async () => {
  const h = await run(["--help"]);
  assert.equal(h.code, 0);
  for (
    const flag of [
      "--max-new-tokens",
      "--seed",
      "--weights",
      "--dtype",
      "--temperature",
      "--top-k",
      "--top-p",
      "--eos",
      "--stream",
      "--no-stream",
      "--json",
      "--quiet",
      "--debug",
      "--help",
      "--version",
    ]
  ) assert.match(h.out, new RegExp(`${flag}\\b`));
  assert.deepEqual(await run(["--version"]), { code: 0, out: VERSION, err: "", streamed: "" });
  const none = await run([]);
  assert.equal(none.code, 2);
  assert.match(none.err, /a prompt is required\nUsage:/);
  assert.equal((await run(["--max-new-tokens", "-3", "hi"])).code, 2);
  assert.match((await run(["--seed", "abc", "hi"])).err, /--seed 'abc' must be an integer/);
  assert.match((await run(["--bogus", "hi"])).err, /Unknown option '--bogus'/);
  assert.match((await run([""])).err, /the prompt is empty/);
});

Deno.test("mod.ts exits with code 2 on a usage error", async () => {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../mod.ts", import.meta.url).pathname, "--seed=-1", "x"],
    stdout: "piped",
    stderr: "piped",
  });
  const r = await cmd.output();
  assert.equal(r.code, 2);
  assert.match(new TextDecoder().decode(r.stderr), /--seed '-1' must be an integer of at least 0/);
});

Deno.test("main() --json, --stream and sampling flags agree on the same seed", async () => {
  const w = await smallWeights();
  try {
    const flags = [
      "--weights",
      w,
      "--max-new-tokens",
      "12",
      "--temperature",
      "0.9",
      "--top-k",
      "50",
      "--top-p",
      "0.95",
      "--seed",
      "5",
    ];
    const j = await run([...flags, "--json", "--quiet", "Every effort moves you"]);
    assert.equal(j.code, 0, j.err);
    assert.equal(j.err, "", "--quiet leaves stderr empty");
    const o = JSON.parse(j.out);
    assert.equal(o.prompt, "Every effort moves you");
    assert.deepEqual(o.prompt_ids, o.ids.slice(0, o.prompt_ids.length));
    assert.equal(o.ids.length, o.prompt_ids.length + 12);
    assert.equal(o.text, decode(o.ids));
    for (const k of ["load_ms", "prefill_ms", "generate_ms", "decode_tokens_per_s"]) {
      assert.equal(typeof o.timings[k], "number", k);
    }
    const st = await run([...flags, "--stream", "Every effort moves you"]);
    assert.equal(st.code, 0, st.err);
    assert.equal(st.streamed, o.text + "\n");
    assert.match(st.err, /prompt tokens 4, new tokens \d+, load [\d.]+ ms, prefill [\d.]+ ms, [\d.]+ tokens\/s/);
    const eos = await run(["--weights", w, "--eos", "--no-stream", "--quiet", "--max-new-tokens", "3", "Hi"]);
    assert.equal(eos.code, 0, eos.err);
  } finally {
    await Deno.remove(w);
  }
});

Deno.test("main() exit codes: 2 with the usage line for bad flags, 1 with one sentence for runtime errors", async () => {
  for (
    const args of [
      ["--top-p", "0", "x"],
      ["--temperature=-1", "x"],
      ["--top-k", "0", "x"],
      ["--dtype", "f8", "x"],
      ["--json", "--stream", "x"],
      ["--ids", "1,x"],
      ["--ids", "1,2", "prompt"],
    ]
  ) {
    const r = await run(args);
    assert.equal(r.code, 2, args.join(" "));
    assert.match(r.err, /^error: .+\nUsage: /, args.join(" "));
  }
  const missing = await run(["--weights", "/nonexistent/dir", "x"]);
  assert.equal(missing.code, 1);
  assert.equal(missing.err.split("\n").length, 1);
  assert.match(missing.err, /^error: Cannot load weights: '\/nonexistent\/dir' does not exist/);
  const debug = await run(["--weights", "/nonexistent/dir", "--debug", "x"]);
  assert.match(debug.err, /\n\s+at /, "--debug prints the stack");
});

Deno.test("least privilege: the seed example runs with no permission flags, --weights with read access to that path only", async () => {
  const mod = new URL("../mod.ts", import.meta.url).pathname;
  const run = (args: string[]) =>
    new Deno.Command(Deno.execPath(), { args: ["run", "--no-prompt", ...args], stdout: "piped", stderr: "piped" })
      .output();
  const plain = await run([mod, "--max-new-tokens", "1", "--quiet", "Hello, I am"]);
  assert.equal(plain.code, 0, new TextDecoder().decode(plain.stderr));
  assert.match(new TextDecoder().decode(plain.stdout), /Output: \[\[15496, 11, 314, 716, 27018\]\]/);
  const w = await smallWeights();
  try {
    const denied = await run([mod, "--weights", w, "Hi"]);
    assert.equal(denied.code, 1);
    assert.match(new TextDecoder().decode(denied.stderr), /Requires read access/);
    const allowed = await run([`--allow-read=${w}`, mod, "--weights", w, "--quiet", "--max-new-tokens", "2", "Hi"]);
    assert.equal(allowed.code, 0, new TextDecoder().decode(allowed.stderr));
  } finally {
    await Deno.remove(w);
  }
});

Deno.test({
  name: "mod.ts in a terminal, with no flags, prints the seed example without a permission prompt",
  ignore: Deno.build.os !== "linux",
  async fn() {
    // Deno prompts only when it has a terminal: run it under one (util-linux's script), stdin closed,
    // so that a prompt would print "Deno requests" and then fail instead of waiting
    const hasScript = await Deno.stat("/usr/bin/script").then(() => true, () => false);
    if (!hasScript) throw new Error("this test needs /usr/bin/script (apt-get install bsdutils)");
    const mod = new URL("../mod.ts", import.meta.url).pathname;
    const cmd = `${JSON.stringify(Deno.execPath())} run ${JSON.stringify(mod)} "Hello, I am"`;
    const child = new Deno.Command("/usr/bin/script", {
      args: ["-qec", cmd, "/dev/null"],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
      env: { NO_COLOR: "1" },
    }).spawn();
    // a prompt waits for an answer: stop the process as soon as one shows, or after two minutes
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    let text = "";
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      text += decoder.decode(chunk, { stream: true });
      if (/Deno requests/.test(text)) child.kill("SIGKILL");
    }
    const out = await child.status;
    clearTimeout(timer);
    assert.doesNotMatch(text, /Deno requests/, text);
    assert.equal(out.code, 0, text);
    assert.match(text, /Hello, I am Featureiman Byeswickattribute argue/);
  },
});

Deno.test("main() --stream prints ids for another vocabulary and counts the new tokens from the ids", async () => {
  const tiny = new URL("./testdata/tiny_hf_gpt2", import.meta.url).pathname;
  const oov = await run(["--weights", tiny, "--ids", "1,101"]);
  assert.equal(oov.code, 2, "an id outside the file's 101-token vocabulary is a usage error");
  assert.match(oov.err, /token id 101 is outside the model's vocabulary \[0, 101\)/);
  const r = await run(["--weights", tiny, "--ids", "1,2,3", "--max-new-tokens", "5", "--stream"]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.streamed, /^1 2 3( \d+){5}\n$/, JSON.stringify(r.streamed));
  assert.match(r.err, /prompt tokens 3, new tokens 5,/);
  const g = await run(["--max-new-tokens", "6", "--stream", "Hello, I am"]);
  assert.equal(g.streamed, "Hello, I am Featureiman Byeswickattribute argue\n");
  assert.match(g.err, /prompt tokens 4, new tokens 6,/);
});

Deno.test("escapeControls() shows control characters and escape sequences instead of sending them to the terminal", async () => {
  const { escapeControls } = await import("../src/cli/_common.ts");
  assert.equal(escapeControls("a\x1b[2Jb\x07c\r\n\td\x7f\x9b"), "a\\x1b[2Jb\\x07c\\x0d\n\td\\x7f\\x9b");
  assert.equal(escapeControls("café 🙂 中文"), "café 🙂 中文");
});

Deno.test("mod.ts --stream into a pipe that closes early ends quietly with exit 0", async () => {
  const mod = new URL("../mod.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", mod, "--stream", "--max-new-tokens", "300", "--quiet", "Hello, I am"],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  await reader.read(); // the prompt
  await reader.cancel(); // like `| head -c 20`
  const [status, stderr] = await Promise.all([child.status, new Response(child.stderr).text()]);
  assert.equal(stderr.includes("Broken pipe"), false, stderr);
  assert.equal(status.code, 0, stderr);
});

Deno.test("Ctrl-C (SIGINT) during --stream stops within a chunk, keeps the text so far, and exits 130", async () => {
  if (Deno.build.os === "windows") return;
  const mod = new URL("../mod.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", mod, "--stream", "--max-new-tokens", "3000", "--quiet", "Hello, I am"],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  let text = "";
  const decoder = new TextDecoder();
  // the prompt, then some generated text
  while (text.length <= "Hello, I am".length + 5) text += decoder.decode((await reader.read()).value);
  const t = performance.now();
  child.kill("SIGINT");
  for (let r = await reader.read(); !r.done; r = await reader.read()) text += decoder.decode(r.value);
  const [status, stderr] = await Promise.all([child.status, new Response(child.stderr).text()]);
  assert.equal(status.code, 130, stderr);
  assert.equal(stderr.trim(), "interrupted");
  assert.ok(text.startsWith("Hello, I am") && text.endsWith("\n"), JSON.stringify(text));
  assert.ok(performance.now() - t < 60_000, "stopped long before 3,000 tokens");
});
