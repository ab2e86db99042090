// bench/runtimes.ts's Node side: node node_runner.mjs DIST_MOD_JS WEBGPU_INDEX_JS [DAWN_FLAG...]
import { createInterface } from "node:readline";
import { round, setup } from "./decode_round.js";
const [, , dist, webgpu, ...flags] = process.argv;
const L = await import(dist);
const { create } = await import(webgpu);
const s = await setup(L, create(flags));
console.log("ready");
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === "run") console.log(JSON.stringify(await round(s)));
}
s.model.destroy();
process.exit(0);
