/**
 * Writes train_ids.json for train_reference.py: each case's training and validation text
 * (`train_cases.json`: the first `chars` characters of `train_text.txt`, split at
 * `int(trainRatio * len)` as the book's `main()` does) in GPT-2's tokens, and the start context's.
 *
 *   deno run -A tests/testdata/train_ids.ts
 */
import { encode } from "../../src/text/tokenizer.ts";

const here = new URL(".", import.meta.url);
const spec = JSON.parse(await Deno.readTextFile(new URL("train_cases.json", here)));
const full = Array.from(await Deno.readTextFile(new URL(spec.text, here)));
const cases = spec.cases.map((c: { name: string; chars: number | null; trainRatio: number }) => {
  const chars = c.chars === null ? full : full.slice(0, c.chars);
  const split = Math.floor(c.trainRatio * chars.length);
  const train = encode(chars.slice(0, split).join(""));
  const val = encode(chars.slice(split).join(""));
  console.log(`${c.name}: ${train.length} training tokens, ${val.length} validation tokens`);
  return { name: c.name, train, val };
});
await Deno.writeTextFile(
  new URL("train_ids.json", here),
  JSON.stringify({ start: encode(spec.startContext), cases }) + "\n",
);
