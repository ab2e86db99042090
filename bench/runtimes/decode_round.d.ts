/** What one round measured. */
export interface Round {
  ms: number;
  tokens: number;
  prefillMs: number;
  readbackMs: number;
}
/** The model, warm, and a device for the readback probe. */
export interface Setup {
  model: { destroy(): void };
}
export function setup(L: unknown, gpu?: GPU): Promise<Setup>;
export function round(s: Setup): Promise<Round>;
