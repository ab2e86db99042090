/**
 * Compiles the WGSL kernels once per device, with explicit bind group layouts so that the
 * variants of one kernel (e.g. rows per workgroup) share bind groups.
 *
 * @module
 */

import type { KernelSpec } from "../../kernels/mod.ts";
import { ShaderStage } from "./flags.ts";

export type { BindingKind, KernelSpec } from "../../kernels/mod.ts";

interface DeviceCache {
  layouts: Map<string, GPUBindGroupLayout>;
  pipelines: Map<string, GPUComputePipeline>;
}

const caches = new WeakMap<GPUDevice, DeviceCache>();

function cacheFor(device: GPUDevice): DeviceCache {
  let c = caches.get(device);
  if (!c) {
    c = { layouts: new Map(), pipelines: new Map() };
    caches.set(device, c);
  }
  return c;
}

/**
 * The bind group layout of a kernel on a device, made once.
 *
 * @param device The device.
 * @param spec The kernel.
 * @returns The layout shared by every variant of the kernel.
 */
export function layoutOf(device: GPUDevice, spec: KernelSpec): GPUBindGroupLayout {
  const c = cacheFor(device);
  let l = c.layouts.get(spec.name);
  if (!l) {
    l = device.createBindGroupLayout({
      label: spec.name,
      entries: spec.bindings.map((kind, binding) => ({
        binding,
        visibility: ShaderStage.COMPUTE,
        buffer: {
          type: kind === "uniform" ? "uniform" : kind === "read" ? "read-only-storage" : "storage",
        },
      })),
    });
    c.layouts.set(spec.name, l);
  }
  return l;
}

/**
 * A compute pipeline for a kernel and its override constants, compiled once per device.
 *
 * @param device The device.
 * @param spec The kernel.
 * @param constants Values for the kernel's `override` declarations.
 * @returns The pipeline.
 * @throws {Error} When the WGSL does not compile, with the kernel's name and the compiler's messages.
 */
export async function pipelineOf(
  device: GPUDevice,
  spec: KernelSpec,
  constants: Record<string, number> = {},
): Promise<GPUComputePipeline> {
  const c = cacheFor(device);
  const key = `${spec.name}|${JSON.stringify(constants)}`;
  const cached = c.pipelines.get(key);
  if (cached) return cached;
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ label: spec.name, code: spec.code });
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === "error");
  if (errors.length > 0) {
    await device.popErrorScope();
    throw new Error(`Cannot compile kernel '${spec.name}': ${errors.map(describeMessage).join("; ")}`);
  }
  const pipeline = device.createComputePipeline({
    label: key,
    layout: device.createPipelineLayout({ bindGroupLayouts: [layoutOf(device, spec)] }),
    compute: { module, entryPoint: "main", constants },
  });
  const err = await device.popErrorScope();
  if (err) throw new Error(`Cannot build pipeline '${key}': ${err.message}`);
  c.pipelines.set(key, pipeline);
  return pipeline;
}

/** A compiler message with where it points: `line 138:22: mixing '*' and '^' requires parenthesis`. */
function describeMessage(m: GPUCompilationMessage): string {
  // Dawn repeats the source and a caret under the message; its first line is what matters
  const text = m.message.trim().split("\n")[0];
  return m.lineNum > 0 ? `line ${m.lineNum}:${m.linePos}: ${text}` : text;
}
