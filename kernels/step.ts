/**
 * The per-step uniform block shared by every kernel: which tokens a step reads and where.
 *
 * A generation call writes one `Step` per step into a table and copies the current one into a
 * small uniform buffer before each step's compute pass, so one submission runs many steps.
 *
 * @module
 */

/** WGSL declaration of the per-step uniform (`st`): batch rows, tokens per row, window start, first position. */
export const STEP_WGSL: string = /* wgsl */ `
struct Step {
  batch: u32, // rows of the batch (B)
  T: u32,     // tokens per row in this step
  rows: u32,  // B * T
  start: u32, // index in a token row of the first token this step reads
  pos0: u32,  // position (and key/value cache slot) of the first token this step reads
  L: u32,     // length of a token row in the token buffer
  index: u32, // the step's number in its generation call (seeds the sampler)
  pad1: u32,
}
`;

/** Size in bytes of one `Step` (eight u32 values). */
export const STEP_BYTES = 32;
