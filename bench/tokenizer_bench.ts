// deno bench -A bench/tokenizer_bench.ts: GPT-2's tokenizer on its worst cases, 10,000 characters
// with no space to split them (one piece each), against ordinary English of the same length.
// js-tiktoken's own merge loop took 16.5 s for 2,000 CJK characters and 74 s for 4,000.
import { encode } from "../src/text/tokenizer.ts";

const english = (await Deno.readTextFile(new URL("./data/paragraph.txt", import.meta.url))).repeat(15).slice(0, 10_000);
const cases: [string, string][] = [
  ["ordinary English, 10,000 characters", english],
  ['"ab" x 5,000 (no spaces)', "ab".repeat(5000)],
  ["10,000 CJK characters (no spaces)", "中文字符测试汉语".repeat(1250)],
  ['"a" x 10,000', "a".repeat(10000)],
];
for (const [name, text] of cases) {
  Deno.bench({ name, group: "tokenizer", baseline: name.startsWith("ordinary"), n: 5, fn: () => void encode(text) });
}
