/**
 * GPU memory the weights of each GPT-2 size take, as allocated (`model.weightBytes`), for the weight
 * types given (default all three). The models are seeded untrained ones with GPT-2's tied head
 * (the token embedding serves as the output head, stored once), created and destroyed one at a time.
 *
 *   deno run -A bench/weight_memory.ts [q8] [f16] [f32]
 *
 * @module
 */

import {
  GPT_CONFIG_124M,
  GPT_CONFIG_1558M,
  GPT_CONFIG_355M,
  GPT_CONFIG_774M,
  GPTModel,
  validateConfig,
  type WeightDType,
} from "../mod.ts";
import { seededParameters } from "../src/weights/init.ts";

const dtypes = (Deno.args.length ? Deno.args : ["f32", "f16", "q8"]) as WeightDType[];
const sizes = { "124M": GPT_CONFIG_124M, "355M": GPT_CONFIG_355M, "774M": GPT_CONFIG_774M, "1558M": GPT_CONFIG_1558M };
console.log(`| model | ${dtypes.join(" | ")} |`);
console.log(`| --- | ${dtypes.map(() => "---").join(" | ")} |`);
for (const [name, config] of Object.entries(sizes)) {
  const cells: string[] = [];
  for (const dtype of dtypes) {
    const cfg = validateConfig(config);
    const tensors = seededParameters(cfg, 123).filter((t) => t.name !== "out_head.weight");
    using model = await GPTModel.fromTensors(cfg, tensors, { dtype, tiedHead: true });
    cells.push(`${(model.weightBytes / 1e9).toFixed(3)} GB`);
  }
  console.log(`| GPT-2 ${name} | ${cells.join(" | ")} |`);
}
