/**
 * The per-step uniform block shared by every kernel: which tokens a step reads and where.
 *
 * A generation call writes one `Step` per step into a table and copies the current one into a
 * small uniform buffer before each step's compute pass, so one submission runs many steps.
 *
 * A ragged step (`ragged` = 1, continuous batching) gives each batch row its own entry in `row`:
 * the cache and token row it uses (`slot`), where its tokens start, its first position, and its
 * sampling settings, so rows of different lengths and positions share one step. Every other step
 * copies only the 32-byte header and leaves `ragged` at 0: batch row b then uses slot b, `start`
 * and `pos0`, and the sampler reads its settings from its own parameters.
 *
 * @module
 */

/** Batch rows a ragged step can hold. */
export const MAX_RAGGED_ROWS = 64;

/** WGSL declaration of the per-step uniform (`st`) and the accessors of a batch row's slot and positions. */
export const STEP_WGSL: string = /* wgsl */ `
struct Row {
  slot: u32,  // cache row and token row
  start: u32, // index in the token row of the first token this step reads
  pos0: u32,  // position (and key/value cache slot) of that token
  index: u32, // steps this row has run before (seeds its draws)
  seed: u32,  // seed of its draws
  draw: u32,  // its row in its own request (seeds its draws)
  topk: u32,  // top-k, 0: off
  pad0: u32,
  temp: f32,  // temperature, 0: greedy (the argmax's choice stands)
  topp: f32,  // top-p, 1: off
  pad1: u32,
  pad2: u32,
}
struct Step {
  batch: u32,  // rows of the batch (B)
  T: u32,      // tokens per row in this step
  rows: u32,   // B * T
  start: u32,  // index in a token row of the first token this step reads
  pos0: u32,   // position (and key/value cache slot) of the first token this step reads
  L: u32,      // length of a token row in the token buffer
  index: u32,  // the step's number in its generation call (seeds the sampler)
  ragged: u32, // 1: each batch row reads its own entry of row
  row: array<Row, ${MAX_RAGGED_ROWS}>,
}
fn slot_of(b: u32) -> u32 { return select(b, st.row[b].slot, st.ragged != 0u); }
fn start_of(b: u32) -> u32 { return select(st.start, st.row[b].start, st.ragged != 0u); }
fn pos0_of(b: u32) -> u32 { return select(st.pos0, st.row[b].pos0, st.ragged != 0u); }
// where batch row b's next token goes: after the step's window in its token row
fn next_of(b: u32) -> u32 { return slot_of(b) * st.L + start_of(b) + st.T; }
`;

/** Size in bytes of a `Step` header (eight u32 values): what a step table holds per step. */
export const STEP_BYTES = 32;

/** Size in bytes of one ragged row entry. */
export const ROW_BYTES = 48;

/** Size in bytes of the whole `Step` uniform, header and ragged rows. */
export const STEP_UNIFORM_BYTES: number = STEP_BYTES + MAX_RAGGED_ROWS * ROW_BYTES;

/** The header of a `Step`: which tokens a step reads and where (see {@linkcode STEP_WGSL}). */
export interface StepHeader {
  /** Rows of the batch (B). */
  batch: number;
  /** Tokens per row in this step. */
  T: number;
  /** Index in a token row of the first token this step reads (default 0). */
  start?: number;
  /** Position (and cache slot) of that token (default 0). */
  pos0?: number;
  /** Length of a token row in the token buffer. */
  L: number;
  /** The step's number in its call, which seeds the sampler (default 0). */
  index?: number;
  /** Each batch row reads its own {@linkcode StepRow} (default false). */
  ragged?: boolean;
}

/** One batch row's entry of a ragged step. */
export interface StepRow {
  /** Its cache row and token row. */
  slot: number;
  /** Index in its token row of the first token it reads. */
  start: number;
  /** Position (and cache slot) of that token. */
  pos0: number;
  /** Steps it has run before (seeds its draws). */
  index: number;
  /** Seed of its draws. */
  seed: number;
  /** Its row in its own request (seeds its draws). */
  draw: number;
  /** Top-k, 0: off. */
  topK: number;
  /** Temperature, 0: greedy. */
  temperature: number;
  /** Top-p, 1: off. */
  topP: number;
}

/** The header's fields in the order of the WGSL struct: the one place the layout is written in TypeScript. */
export const STEP_FIELDS: readonly string[] = ["batch", "T", "rows", "start", "pos0", "L", "index", "ragged"];

/** A row entry's fields in the order of the WGSL struct (`pad*` words are zero). */
export const ROW_FIELDS: readonly string[] = [
  "slot",
  "start",
  "pos0",
  "index",
  "seed",
  "draw",
  "topk",
  "pad0",
  "temp",
  "topp",
  "pad1",
  "pad2",
];

/**
 * Writes a step's header (its {@linkcode STEP_BYTES}) at byte `at` of `buf`.
 *
 * @param h The header.
 * @param buf Where (default: a new buffer of one header).
 * @param at Byte offset.
 * @returns The buffer.
 */
export function encodeStep(h: StepHeader, buf: ArrayBuffer = new ArrayBuffer(STEP_BYTES), at = 0): ArrayBuffer {
  const v = { ...h, rows: h.batch * h.T, ragged: h.ragged ? 1 : 0 } as Record<string, number | undefined>;
  new Uint32Array(buf, at, STEP_FIELDS.length).set(STEP_FIELDS.map((k) => v[k] ?? 0));
  return buf;
}

/**
 * Writes the entry of batch row `b` of the ragged step whose header is at byte `at` of `buf`.
 *
 * @param r The row.
 * @param buf The step table.
 * @param at Byte offset of the step's header.
 * @param b The batch row.
 */
export function encodeRow(r: StepRow, buf: ArrayBuffer, at: number, b: number): void {
  const o = at + STEP_BYTES + b * ROW_BYTES;
  new Uint32Array(buf, o, 8).set([r.slot, r.start, r.pos0, r.index, r.seed >>> 0, r.draw, r.topK, 0]);
  new Float32Array(buf, o + 32, 2).set([r.temperature, r.topP]);
}
