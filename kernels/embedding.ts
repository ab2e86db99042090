import { STEP_WGSL } from "./step.ts";
import { Q8_BLOCK } from "./matmul.ts";
import type { ParamsLayout } from "./params.ts";

function embedding(dtype: "f32" | "f16" | "q8"): string {
  return /* wgsl */ `
// Token + position embedding for the rows of one step, from one vocabulary chunk of the
// (transposed) token embedding. One invocation writes x[m, c] when token m's id is in the chunk.
// binding 0 (uniform) p: C, first id of the chunk, ids in the chunk
// binding 1 (uniform) st: the step
// binding 2 (read) tokens: u32 ids, [B, L]
// binding 3 (read) wte: the chunk, stored like a matmul weight with K = C (blocks of 256 ids),
//   ${
    { f32: "f32", f16: "halves packed two to a u32", q8: "signed bytes packed four to a u32, then the scales" }[dtype]
  }
// binding 4 (read) wpe: [context_length, C] f32
// binding 5 (write) x: [rows, C] f32
${STEP_WGSL}
struct Params { C: u32, v0: u32, vn: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read> tokens: array<u32>;
@group(0) @binding(3) var<storage, read> wte: array<${dtype === "f32" ? "f32" : "u32"}>;
@group(0) @binding(4) var<storage, read> wpe: array<f32>;
@group(0) @binding(5) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  let m = gid.y;
  if (c >= p.C || m >= st.rows) { return; }
  let b = m / st.T;
  let t = m % st.T;
  let id = tokens[slot_of(b) * st.L + start_of(b) + t];
  if (id < p.v0 || id >= p.v0 + p.vn) { return; }
  let v = id - p.v0;
  let j = ((v >> 8u) * p.C + c) * 256u + (v & 255u);
  ${
    {
      f32: "let w = wte[j];",
      f16: "let w = unpack2x16float(wte[j >> 1u])[j & 1u];",
      // the byte, sign-extended, times the 16-bit scale of its column and k-block (see kernels/matmul.ts)
      q8: `let q = f32(i32(wte[j >> 2u] << (24u - 8u * (j & 3u))) >> 24u);
  let s = ((p.vn + 255u) / 256u) * p.C * 64u + ((v >> 8u) * ((p.C + ${
        Q8_BLOCK - 1
      }u) / ${Q8_BLOCK}u) + c / ${Q8_BLOCK}u) * 128u + (v & 255u) / 2u;
  let w = q * unpack2x16float(wte[s])[v & 1u];`,
    }[dtype]
  }
  x[m * p.C + c] = w + wpe[(pos0_of(b) + t) * p.C + c];
}
`;
}

/** Token + position embedding, float32 weights. */

export const EMBEDDING_WGSL: string = embedding("f32");
/** Token + position embedding, 16-bit weights packed two to a u32. */
export const EMBEDDING_F16_WGSL: string = embedding("f16");
/** Token + position embedding, 8-bit weights with a scale per 32 values of each id. */
export const EMBEDDING_Q8_WGSL: string = embedding("q8");

/** The fields of this kernel"s `Params` struct, in WGSL order (see `params.ts`). */
export const EMBEDDING_PARAMS: ParamsLayout = { struct: "Params", fields: ["C", "v0", "vn", "pad"] };
