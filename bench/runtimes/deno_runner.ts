// bench/runtimes.ts's Deno side: "ready" once warm, then one JSON line per "run" on stdin.
import * as L from "../../mod.ts";
// @ts-types="./decode_round.d.ts"
import { round, setup } from "./decode_round.js";

const s = await setup(L);
console.log("ready");
const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
for await (const chunk of lines) {
  for (const _ of chunk.split("\n").filter((l) => l.trim() === "run")) console.log(JSON.stringify(await round(s)));
}
s.model.destroy();
