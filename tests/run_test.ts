import assert from "node:assert/strict";
import { judge } from "./run.ts";

const ok = "running 3 tests\n\x1b[32mok\x1b[0m | 66 passed | 0 failed \x1b[38;5;245m(1m2s)\x1b[0m\n";
const abort = { success: false, code: 134, signal: "SIGABRT" as Deno.Signal };

const segv = { success: false, code: 139, signal: "SIGSEGV" as Deno.Signal };

Deno.test("deno task test forgives only a crash at exit right after a summary with every test passed", () => {
  assert.deepEqual(judge({ success: true, code: 0, signal: null }, ""), { code: 0, forgiven: false });
  assert.deepEqual(judge(abort, ok), { code: 0, forgiven: true });
  assert.deepEqual(judge(segv, ok), { code: 0, forgiven: true });
  assert.deepEqual(judge({ success: false, code: 134, signal: null }, ok + "\n"), { code: 0, forgiven: true });
  // a crash with output after the summary (another run's summary, then more tests) keeps its code
  assert.deepEqual(judge(segv, ok + "running 2 tests\nbar ... ok\n"), { code: 139, forgiven: false });
  // an abort before any summary, after a failure, or with nothing run keeps its code
  assert.deepEqual(judge(abort, "running 3 tests\nfoo ... ok\n"), { code: 134, forgiven: false });
  assert.deepEqual(judge(abort, "FAILED | 65 passed | 1 failed (1m)\n"), { code: 134, forgiven: false });
  assert.deepEqual(judge(abort, "ok | 0 passed | 0 failed (0ms)\n"), { code: 134, forgiven: false });
  // other failures keep their code
  assert.deepEqual(judge({ success: false, code: 1, signal: null }, ok), { code: 1, forgiven: false });
  assert.deepEqual(judge({ success: false, code: 137, signal: "SIGKILL" }, ok), { code: 137, forgiven: false });
  assert.deepEqual(judge(segv, "FAILED | 65 passed | 1 failed (1m)\n"), { code: 139, forgiven: false });
});
