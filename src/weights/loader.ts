/**
 * Weights from safetensors files, in the book's `state_dict` names or Hugging Face GPT-2's, read
 * from a path, a URL, a `Blob`, bytes or a `Response`.
 *
 * @module
 */

import type { GPTConfig } from "./config.ts";
import type { InputTensor } from "./model_weights.ts";
import { WeightsError } from "./model_weights.ts";
import { SafetensorsFile } from "./safetensors.ts";
import {
  blobSource,
  type ByteSource,
  bytesSource,
  fileSource,
  responseSource,
  urlSource,
  type WeightsInput,
} from "./_sources.ts";
import { hasFiles, notFound, readTextIfExists, statPath } from "../platform/files.ts";

export type { WeightsInput };

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
/** The causal mask buffer in the book's `state_dict` (`register_buffer("mask", ...)`): not a parameter. */
const BOOK_SKIP = /^trf_blocks\.\d+\.att\.mask$/;

/**
 * The book's name for a Hugging Face GPT-2 tensor, and whether it is stored input-major (GPT-2's
 * `Conv1D` weights are `[in, out]`, the book's `nn.Linear` ones `[out, in]`).
 *
 * @param key The Hugging Face name, e.g. `h.0.attn.c_attn.weight` (with or without `transformer.`).
 * @returns The book's name, e.g. `trf_blocks.0.att.qkv.weight`; null for the attention masks GPT-2 stores.
 * @throws {WeightsError} For a name that is not part of GPT-2.
 */
export function huggingFaceName(key: string): { name: string; inputMajor: boolean } | null {
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

/**
 * The book's configuration for a Hugging Face GPT-2 `config.json`.
 *
 * @param raw The parsed `config.json`.
 * @param where Where it came from, for messages.
 * @returns The configuration (`qkv_bias` on, `drop_rate` 0).
 * @throws {WeightsError} When a size is missing.
 */
export function huggingFaceConfig(raw: Record<string, unknown>, where: string): GPTConfig {
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

function parseJsonObject(text: string, where: string): Record<string, unknown> {
  try {
    const v = JSON.parse(text);
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error("not an object");
    return v;
  } catch (e) {
    throw new WeightsError(`Cannot read '${where}': it is not a JSON object (${(e as Error).message})`);
  }
}

/** `config.json` beside the weights: in the directory, or at the URL's sibling (undefined when absent). */
async function siblingConfig(where: Where, init?: RequestInit): Promise<{ text: string; at: string } | undefined> {
  if (where.dir !== undefined) {
    const at = `${where.dir}/config.json`;
    const text = await readTextIfExists(at);
    return text === undefined ? undefined : { text, at };
  }
  if (where.url) {
    const at = new URL("config.json", where.url);
    const r = await fetch(at, init);
    if (!r.ok) {
      await r.body?.cancel();
      return undefined;
    }
    return { text: await r.text(), at: at.href };
  }
  return undefined;
}

/** GPT-2's head count for its widths (64 per head), for Hugging Face weights given without `config.json`. */
const GPT2_HEADS: Record<number, number> = { 768: 12, 1024: 16, 1280: 20, 1600: 25 };

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

/** Where the weights are: a local directory and file, or a URL, or neither (a Blob, bytes, a Response). */
interface Where {
  dir?: string;
  url?: URL;
}

/** The weights file of a path (a file, or a directory with `model.safetensors`) and its directory. */
async function locate(path: string): Promise<{ dir: string; file: string }> {
  const stat = await statPath(path);
  if (!stat) {
    throw notFound(
      `Cannot load weights: '${path}' does not exist, pass a .safetensors file or a directory holding model.safetensors`,
    );
  }
  const dir = stat.isDirectory ? path : path.replace(/[\\/][^\\/]*$/, "") || ".";
  const file = stat.isDirectory ? `${path}/model.safetensors` : path;
  const fileStat = stat.isDirectory ? await statPath(file) : stat;
  if (!fileStat) throw notFound(`Cannot load weights: directory '${path}' has no model.safetensors`);
  // a FIFO, socket or device would be read forever (or block): only regular files are weights
  if (!fileStat.isFile) {
    throw new WeightsError(`Cannot load weights: '${file}' is not a regular file, pass a .safetensors file`);
  }
  return { dir, file };
}

/**
 * The bytes of a weights input, and where it is (for `config.json`).
 *
 * @param input A path, URL, `Blob`, bytes or `Response`. A string is a path where the runtime has
 * files and a URL (relative to the page) where it does not; `http:`/`https:` strings are URLs everywhere.
 * @param init Request options for URLs.
 * @returns The source and where it is.
 */
async function openInput(input: WeightsInput, init?: RequestInit): Promise<{ bytes: ByteSource; where: Where }> {
  if (typeof input === "string") {
    if (/^https?:\/\//i.test(input) || !hasFiles()) {
      const base = (globalThis as { location?: { href: string } }).location?.href;
      return await openInput(new URL(input, base), init);
    }
    const { dir, file } = await locate(input);
    return { bytes: await fileSource(file), where: { dir } };
  }
  if (input instanceof URL) {
    if (input.protocol === "file:") return await openInput(decodeURIComponent(input.pathname), init);
    return { bytes: await urlSource(input, init), where: { url: input } };
  }
  if (typeof Response !== "undefined" && input instanceof Response) return { bytes: responseSource(input), where: {} };
  if (typeof Blob !== "undefined" && input instanceof Blob) return { bytes: blobSource(input), where: {} };
  if (input instanceof ArrayBuffer) return { bytes: bytesSource(new Uint8Array(input)), where: {} };
  if (input instanceof Uint8Array) return { bytes: bytesSource(input), where: {} };
  throw new TypeError(
    `Cannot load weights from ${
      Object.prototype.toString.call(input)
    }: pass a path, a URL, a Blob or File, an ArrayBuffer or Uint8Array, or a Response`,
  );
}

/**
 * The configuration: the one given, else `config.json` beside Hugging Face weights, else the file's
 * metadata, else (Hugging Face weights of one of GPT-2's widths) GPT-2's.
 */
async function configOf(
  st: SafetensorsFile,
  o: { where: Where; isHf: boolean; config?: GPTConfig; init?: RequestInit },
): Promise<GPTConfig> {
  const file = st.path;
  if (o.config) return o.config;
  if (o.isHf) {
    const cj = await siblingConfig(o.where, o.init);
    if (cj) return huggingFaceConfig(parseJsonObject(cj.text, cj.at), cj.at);
  }
  if (st.metadata.config) {
    try {
      return JSON.parse(st.metadata.config) as GPTConfig;
    } catch {
      throw new WeightsError(`Cannot load '${file}': __metadata__.config is not valid JSON`);
    }
  }
  const wte = st.tensors.get("wte.weight") ?? st.tensors.get("transformer.wte.weight");
  const wpe = st.tensors.get("wpe.weight") ?? st.tensors.get("transformer.wpe.weight");
  const layers = new Set([...st.tensors.keys()].map((k) => /(?:^|\.)h\.(\d+)\./.exec(k)?.[1]).filter(Boolean));
  if (o.isHf && wte && wpe && GPT2_HEADS[wte.shape[1]]) {
    return huggingFaceConfig({
      vocab_size: wte.shape[0],
      n_positions: wpe.shape[0],
      n_embd: wte.shape[1],
      n_head: GPT2_HEADS[wte.shape[1]],
      n_layer: layers.size,
    }, file);
  }
  throw new WeightsError(
    `Cannot load '${file}': no configuration found (config.json or __metadata__.config), pass one as options.config`,
  );
}

/**
 * Opens weights and works out their format and configuration.
 *
 * @param input A `.safetensors` file or a directory with `model.safetensors` (and `config.json`);
 * a URL (read with Range requests; `config.json` is looked for beside it); a `Blob` or `File`; an
 * `ArrayBuffer` or `Uint8Array`; or a `Response`.
 * @param config A configuration to use instead of the file's.
 * @param init Request options for a URL (headers, a signal).
 * @returns The source; close it when done.
 * @throws {Deno.errors.NotFound} When a path does not exist (with a message naming it).
 * @throws {WeightsError} When the format or configuration cannot be worked out.
 */
export async function openWeights(input: WeightsInput, config?: GPTConfig, init?: RequestInit): Promise<WeightSource> {
  const { bytes, where } = await openInput(input, init);
  let st: SafetensorsFile;
  try {
    st = await SafetensorsFile.from(bytes);
  } catch (e) {
    bytes.close();
    throw e;
  }
  const file = st.path;
  try {
    const keys = [...st.tensors.keys()];
    const isHf = keys.some((k) => /^(transformer\.)?wte\.weight$/.test(k));
    const isBook = keys.includes("tok_emb.weight");
    if (!isHf && !isBook) {
      throw new WeightsError(
        `Cannot load '${file}': it has neither 'tok_emb.weight' (the book's names) nor 'wte.weight' (Hugging Face GPT-2)`,
      );
    }
    const cfg = await configOf(st, { where, isHf, config, init });
    const mapped: { key: string; name: string; inputMajor: boolean }[] = [];
    for (const key of keys) {
      if (isHf) {
        const m = huggingFaceName(key);
        if (m) mapped.push({ key, ...m });
      } else if (!BOOK_SKIP.test(key)) {
        mapped.push({ key, name: key, inputMajor: false });
      }
    }
    // in file order, so that a Response (read once, forward) can be the source
    mapped.sort((a, b) => st.tensors.get(a.key)!.begin - st.tensors.get(b.key)!.begin);
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
