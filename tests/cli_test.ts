import assert from "node:assert/strict";
import { main, VERSION } from "../src/cli.ts";

async function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, (s) => out.push(s), (s) => err.push(s));
  return { code, out: out.join("\n"), err: err.join("\n") };
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
  for (const flag of ["--max-new-tokens", "--seed", "--help", "--version"]) assert.match(h.out, new RegExp(flag));
  assert.deepEqual(await run(["--version"]), { code: 0, out: VERSION, err: "" });
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
