/**
 * Weights from safetensors files, in the book's `state_dict` names or Hugging Face GPT-2's.
 *
 * @module
 */

import type { GPTConfig } from "./config.ts";
import type { InputTensor } from "./model_weights.ts";
import { WeightsError } from "./model_weights.ts";
import { SafetensorsFile } from "./safetensors.ts";

/** Where the weights came from and how to read them. */
export interface WeightSource {
  /** The configuration (from the file, `config.json` or the caller). */
  config: GPTConfig;
  /** `"book"` or `"huggingface"`. */
  format: "book" | "huggingface";
  /** True when the output head is the token embedding (no `lm_head.weight`). */
  tiedHead: boolean;
  /** Bytes of tensor data to read. */
  totalBytes: number;
  /** The tensors under the book's names, read one at a time. */
  tensors(onProgress?: (done: number, total: number) => void): AsyncGenerator<InputTensor>;
  /** Closes the file. */
  close(): void;
}

const HF_SKIP = /(^|\.)attn\.(bias|masked_bias)$/;

function hfName(key: string): { name: string; inputMajor: boolean } | null {
  const k = key.replace(/^transformer\./, "");
  if (HF_SKIP.test(k)) return null;
  const simple: Record<string, string> = {
    "wte.weight": "tok_emb.weight",
    "wpe.weight": "pos_emb.weight",
    "ln_f.weight": "final_norm.scale",
    "ln_f.bias": "final_norm.shift",
    "lm_head.weight": "out_head.weight",
  };
  if (k in simple) return { name: simple[k], inputMajor: false };
  const m = /^h\.(\d+)\.(.+)$/.exec(k);
  if (!m) throw new WeightsError(`Tensor '${key}' is not part of a Hugging Face GPT-2 model`);
  const parts: Record<string, [string, boolean]> = {
    "ln_1.weight": ["norm1.scale", false],
    "ln_1.bias": ["norm1.shift", false],
    "ln_2.weight": ["norm2.scale", false],
    "ln_2.bias": ["norm2.shift", false],
    "attn.c_attn.weight": ["att.qkv.weight", true],
    "attn.c_attn.bias": ["att.qkv.bias", false],
    "attn.c_proj.weight": ["att.out_proj.weight", true],
    "attn.c_proj.bias": ["att.out_proj.bias", false],
    "mlp.c_fc.weight": ["ff.layers.0.weight", true],
    "mlp.c_fc.bias": ["ff.layers.0.bias", false],
    "mlp.c_proj.weight": ["ff.layers.2.weight", true],
    "mlp.c_proj.bias": ["ff.layers.2.bias", false],
  };
  const p = parts[m[2]];
  if (!p) throw new WeightsError(`Tensor '${key}' is not part of a Hugging Face GPT-2 model`);
  return { name: `trf_blocks.${m[1]}.${p[0]}`, inputMajor: p[1] };
}

function hfConfig(raw: Record<string, unknown>, where: string): GPTConfig {
  const num = (k: string, ...alts: string[]): number => {
    for (const key of [k, ...alts]) if (typeof raw[key] === "number") return raw[key] as number;
    throw new WeightsError(`Config '${where}' has no number '${k}'`);
  };
  return {
    vocab_size: num("vocab_size"),
    context_length: num("n_positions", "n_ctx"),
    emb_dim: num("n_embd"),
    n_heads: num("n_head"),
    n_layers: num("n_layer"),
    drop_rate: 0,
    qkv_bias: true,
    layer_norm_epsilon: typeof raw.layer_norm_epsilon === "number" ? raw.layer_norm_epsilon : 1e-5,
  };
}

async function readJson(path: string): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  try {
    const v = JSON.parse(text);
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error("not an object");
    return v;
  } catch (e) {
    throw new WeightsError(`Cannot read '${path}': it is not a JSON object (${(e as Error).message})`);
  }
}

/**
 * Checks a configuration against the tensors a file holds, before anything is allocated: the
 * number of blocks, and the embeddings' shapes (vocabulary, context, width). A configuration that
 * does not fit its file is refused here rather than trusted.
 *
 * @param cfg The configuration.
 * @param tensors The file's tensors, under the book's names.
 * @param file The file, for messages.
 * @throws {WeightsError} When they disagree.
 */
function checkAgainstTensors(cfg: GPTConfig, tensors: { name: string; shape: number[] }[], file: string): void {
  const blocks = new Set<number>();
  for (const t of tensors) {
    const m = /^trf_blocks\.(\d+)\./.exec(t.name);
    if (m) blocks.add(Number(m[1]));
  }
  // more layers than the file holds would be allocated before the missing tensors were noticed
  // (a file with more layers than the configuration fails on the first extra tensor)
  if (cfg.n_layers > blocks.size) {
    throw new WeightsError(
      `Cannot load '${file}': its configuration says ${cfg.n_layers} layers but the file holds ${blocks.size}, fix n_layer in config.json`,
    );
  }
  const expect = (name: string, shape: number[], what: string) => {
    const t = tensors.find((x) => x.name === name);
    if (t && (t.shape.length !== 2 || t.shape[0] !== shape[0] || t.shape[1] !== shape[1])) {
      throw new WeightsError(
        `Cannot load '${file}': its configuration gives ${name} the shape [${shape}] but the file has [${t.shape}], fix ${what} in the configuration`,
      );
    }
  };
  expect("tok_emb.weight", [cfg.vocab_size, cfg.emb_dim], "vocab_size or n_embd");
  expect("pos_emb.weight", [cfg.context_length, cfg.emb_dim], "n_positions or n_embd");
}

/** The weights file of a path (a file, or a directory with `model.safetensors`) and its directory. */
async function locate(path: string): Promise<{ dir: string; file: string }> {
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(
        `Cannot load weights: '${path}' does not exist, pass a .safetensors file or a directory holding model.safetensors`,
      );
    }
    throw e;
  }
  const dir = stat.isDirectory ? path : path.replace(/[\\/][^\\/]*$/, "") || ".";
  const file = stat.isDirectory ? `${path}/model.safetensors` : path;
  let fileStat = stat;
  if (stat.isDirectory) {
    try {
      fileStat = await Deno.stat(file);
    } catch {
      throw new Deno.errors.NotFound(`Cannot load weights: directory '${path}' has no model.safetensors`);
    }
  }
  // a FIFO, socket or device would be read forever (or block): only regular files are weights
  if (!fileStat.isFile) {
    throw new WeightsError(`Cannot load weights: '${file}' is not a regular file, pass a .safetensors file`);
  }
  return { dir, file };
}

/** The configuration: the one given, else `config.json` beside Hugging Face weights, else the file's metadata. */
async function configOf(
  st: SafetensorsFile,
  o: { dir: string; file: string; isHf: boolean; config?: GPTConfig },
): Promise<GPTConfig> {
  let cfg = o.config;
  if (!cfg && o.isHf) {
    const cj = await readJson(`${o.dir}/config.json`);
    if (cj) cfg = hfConfig(cj, `${o.dir}/config.json`);
  }
  if (!cfg && st.metadata.config) {
    try {
      cfg = JSON.parse(st.metadata.config) as GPTConfig;
    } catch {
      throw new WeightsError(`Cannot load '${o.file}': __metadata__.config is not valid JSON`);
    }
  }
  if (!cfg) {
    throw new WeightsError(
      `Cannot load '${o.file}': no configuration found (config.json or __metadata__.config), pass one as options.config`,
    );
  }
  return cfg;
}

/**
 * Opens a weights file or directory and works out its format and configuration.
 *
 * @param path A `.safetensors` file, or a directory with `model.safetensors` (and `config.json`).
 * @param config A configuration to use instead of the file's.
 * @returns The source; close it when done.
 * @throws {Deno.errors.NotFound} When the path does not exist (with a message naming it).
 * @throws {WeightsError} When the format or configuration cannot be worked out.
 */
export async function openWeights(path: string, config?: GPTConfig): Promise<WeightSource> {
  const { dir, file } = await locate(path);
  const st = await SafetensorsFile.open(file);
  try {
    const keys = [...st.tensors.keys()];
    const isHf = keys.some((k) => /^(transformer\.)?wte\.weight$/.test(k));
    const isBook = keys.includes("tok_emb.weight");
    if (!isHf && !isBook) {
      throw new WeightsError(
        `Cannot load '${file}': it has neither 'tok_emb.weight' (the book's names) nor 'wte.weight' (Hugging Face GPT-2)`,
      );
    }
    const cfg = await configOf(st, { dir, file, isHf, config });
    const mapped: { key: string; name: string; inputMajor: boolean }[] = [];
    for (const key of keys) {
      if (isHf) {
        const m = hfName(key);
        if (m) mapped.push({ key, ...m });
      } else {
        mapped.push({ key, name: key, inputMajor: false });
      }
    }
    checkAgainstTensors(cfg, mapped.map((m) => ({ name: m.name, shape: st.tensors.get(m.key)!.shape })), file);
    const tiedHead = isHf && !mapped.some((m) => m.name === "out_head.weight");
    const totalBytes = mapped.reduce((s, m) => s + (st.tensors.get(m.key)!.end - st.tensors.get(m.key)!.begin), 0);
    return {
      config: cfg,
      format: isHf ? "huggingface" : "book",
      tiedHead,
      totalBytes,
      async *tensors(onProgress) {
        let done = 0;
        for (const m of mapped) {
          const info = st.tensors.get(m.key)!;
          const data = await st.read(m.key);
          done += info.end - info.begin;
          onProgress?.(done, totalBytes);
          yield { name: m.name, shape: info.shape, data, inputMajor: m.inputMajor };
        }
      },
      close: () => st.close(),
    };
  } catch (e) {
    st.close();
    throw e;
  }
}
