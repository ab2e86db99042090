// Dawn (Chromium's WebGPU, through npm:webgpu's dawn.node) in this Deno process, beside Deno's own
// wgpu: the second compiler every kernel must pass, and a second runtime for the same ids.
import { create } from "webgpu";

let gpu: GPU | undefined;

/** Dawn's `GPU` (one per process), on the same adapter as Deno's. */
export function dawn(): GPU {
  return gpu ??= create([]) as GPU;
}
