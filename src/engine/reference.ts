/**
 * A plain, slow, obviously correct CPU forward pass of the book's `GPTModel`, for tests.
 *
 * @module
 */

import type { GPTConfig } from "../weights/config.ts";

/** Parameters by the book's `state_dict` names, in PyTorch's layout. */
export type ParamMap = Map<string, Float32Array>;

/** LayerNorm of each row of `x` (`[rows, C]`), biased variance. */
export function layerNormRef(
  x: Float32Array,
  rows: number,
  C: number,
  scale: Float32Array,
  shift: Float32Array,
  eps = 1e-5,
): Float32Array {
  const y = new Float32Array(rows * C);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let c = 0; c < C; c++) mean += x[r * C + c];
    mean /= C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (x[r * C + c] - mean) ** 2;
    v /= C;
    const rstd = 1 / Math.sqrt(v + eps);
    for (let c = 0; c < C; c++) y[r * C + c] = (x[r * C + c] - mean) * rstd * scale[c] + shift[c];
  }
  return y;
}

/** `x @ w.T + b` with `w` in PyTorch's `[out, in]` layout. */
export function linearRef(
  x: Float32Array,
  rows: number,
  K: number,
  w: Float32Array,
  N: number,
  b?: Float32Array,
): Float32Array {
  const y = new Float32Array(rows * N);
  for (let r = 0; r < rows; r++) {
    for (let n = 0; n < N; n++) {
      let s = b ? b[n] : 0;
      for (let k = 0; k < K; k++) s += x[r * K + k] * w[n * K + k];
      y[r * N + n] = s;
    }
  }
  return y;
}

/** GELU, tanh approximation. */
export function geluRef(v: number): number {
  return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
}

/**
 * Causal multi-head attention of `T` queries at positions `pos0..pos0+T-1` over keys and values
 * at positions `0..pos0+T-1` (`q`: `[T, C]`, `k`, `v`: `[pos0 + T, C]`).
 */
export function attentionRef(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  T: number,
  pos0: number,
  C: number,
  H: number,
): Float32Array {
  const hd = C / H;
  const out = new Float32Array(T * C);
  for (let h = 0; h < H; h++) {
    for (let t = 0; t < T; t++) {
      const n = pos0 + t + 1;
      const s = new Float64Array(n);
      let max = -Infinity;
      for (let j = 0; j < n; j++) {
        let d = 0;
        for (let i = 0; i < hd; i++) d += q[t * C + h * hd + i] * k[j * C + h * hd + i];
        s[j] = d / Math.sqrt(hd);
        max = Math.max(max, s[j]);
      }
      let sum = 0;
      for (let j = 0; j < n; j++) sum += s[j] = Math.exp(s[j] - max);
      for (let i = 0; i < hd; i++) {
        let acc = 0;
        for (let j = 0; j < n; j++) acc += s[j] * v[j * C + h * hd + i];
        out[t * C + h * hd + i] = acc / sum;
      }
    }
  }
  return out;
}

/**
 * The logits of the book's `GPTModel` for one row of token ids: `[T, vocab]`.
 *
 * @param cfg The configuration.
 * @param p The parameters (the head falls back to `tok_emb.weight` when `out_head.weight` is absent).
 * @param ids Token ids, at most `context_length`.
 * @returns The logits.
 */
export function forwardRef(cfg: Required<GPTConfig>, p: ParamMap, ids: number[]): Float32Array {
  const { emb_dim: C, n_heads: H, vocab_size: V } = cfg;
  const T = ids.length;
  const get = (n: string) => {
    const t = p.get(n);
    if (!t) throw new Error(`missing ${n}`);
    return t;
  };
  const tok = get("tok_emb.weight");
  const pos = get("pos_emb.weight");
  let x = new Float32Array(T * C);
  for (let t = 0; t < T; t++) {
    for (let c = 0; c < C; c++) x[t * C + c] = tok[ids[t] * C + c] + pos[t * C + c];
  }
  const eps = cfg.layer_norm_epsilon;
  for (let l = 0; l < cfg.n_layers; l++) {
    const b = `trf_blocks.${l}`;
    const h = layerNormRef(x, T, C, get(`${b}.norm1.scale`), get(`${b}.norm1.shift`), eps);
    const q = linearRef(h, T, C, get(`${b}.att.W_query.weight`), C, p.get(`${b}.att.W_query.bias`));
    const k = linearRef(h, T, C, get(`${b}.att.W_key.weight`), C, p.get(`${b}.att.W_key.bias`));
    const v = linearRef(h, T, C, get(`${b}.att.W_value.weight`), C, p.get(`${b}.att.W_value.bias`));
    const a = attentionRef(q, k, v, T, 0, C, H);
    const o = linearRef(a, T, C, get(`${b}.att.out_proj.weight`), C, get(`${b}.att.out_proj.bias`));
    x = x.map((xv, i) => xv + o[i]);
    const h2 = layerNormRef(x, T, C, get(`${b}.norm2.scale`), get(`${b}.norm2.shift`), eps);
    const f = linearRef(h2, T, C, get(`${b}.ff.layers.0.weight`), 4 * C, get(`${b}.ff.layers.0.bias`)).map(geluRef);
    const f2 = linearRef(f, T, 4 * C, get(`${b}.ff.layers.2.weight`), C, get(`${b}.ff.layers.2.bias`));
    x = x.map((xv, i) => xv + f2[i]);
  }
  const hf = layerNormRef(x, T, C, get("final_norm.scale"), get("final_norm.shift"), eps);
  return linearRef(hf, T, C, p.get("out_head.weight") ?? tok, V);
}

/**
 * Greedy generation on the CPU, exactly as `generate_text_simple`, for one row.
 *
 * @returns The row with `maxNew` ids appended.
 */
export function generateRef(
  cfg: Required<GPTConfig>,
  p: ParamMap,
  ids: number[],
  maxNew: number,
  contextSize: number,
): number[] {
  const out = ids.slice();
  for (let s = 0; s < maxNew; s++) {
    const win = out.slice(-contextSize);
    const logits = forwardRef(cfg, p, win);
    const V = cfg.vocab_size;
    const last = logits.subarray((win.length - 1) * V);
    let best = 0;
    for (let i = 1; i < V; i++) if (last[i] > last[best]) best = i;
    out.push(best);
  }
  return out;
}
