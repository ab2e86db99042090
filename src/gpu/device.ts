/**
 * The WebGPU adapter and device: one shared device per process, asked for the adapter's limits.
 *
 * @module
 */

import { osName, readEnv, withEnv } from "../platform/env.ts";

/** Thrown when no WebGPU adapter or device can be had. */
export class WebGPUUnavailableError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is missing and how to get it.
   */
  constructor(message: string) {
    super(message);
    this.name = "WebGPUUnavailableError";
  }
}

/** Thrown when the GPU device was lost while a model used it. */
export class DeviceLostError extends Error {
  /**
   * Creates the error.
   *
   * @param message The reason and the driver's message.
   */
  constructor(message: string) {
    super(message);
    this.name = "DeviceLostError";
  }
}

const HOW_TO_GET_ONE =
  "install a GPU driver with Vulkan support, or on a headless Linux machine Mesa's CPU driver (apt-get install mesa-vulkan-drivers)";

/** A device with what the model code needs to know about it. */
export interface GpuContext {
  /** The device. */
  device: GPUDevice;
  /** The adapter's description, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`. */
  description: string;
  /** True for a CPU adapter (llvmpipe, SwiftShader, WARP). */
  isCpu: boolean;
  /** Whether `timestamp-query` was enabled. */
  timestamps: boolean;
  /** Set when the device is lost: the reason and message. */
  lost?: string;
}

/** The shared device of each `GPU` (`navigator.gpu`, or one a caller passes, e.g. from `npm:webgpu`). */
const shared = new WeakMap<GPU, Promise<GpuContext>>();

// Devices this module created. They are destroyed when the process unloads, so that the WebGPU
// implementation frees them in order rather than during the runtime's own teardown (which was
// seen to abort now and then with live devices).
const created = new Set<GPUDevice>();
let unloadHooked = false;
function track(device: GPUDevice): void {
  created.add(device);
  device.lost.then(() => created.delete(device));
  if (!unloadHooked && typeof globalThis.addEventListener === "function") {
    unloadHooked = true;
    globalThis.addEventListener("unload", () => {
      for (const d of created) d.destroy();
      created.clear();
    });
  }
}

/**
 * GPT_WEBGPU_ALLOW_SLOW_ADAPTER=1 lets the OpenGL llvmpipe adapter through (for experiments). It
 * describes the machine, not a kernel choice; read only where permission is already granted, so
 * that it never prompts.
 */
function allowSlow(): boolean {
  return readEnv("GPT_WEBGPU_ALLOW_SLOW_ADAPTER") === "1";
}

const BACKEND_VAR = "DENO_WEBGPU_BACKEND";

/**
 * On Linux, Deno's WebGPU starts both its Vulkan and its OpenGL backends. The OpenGL one loads a
 * second copy of Mesa (EGL and its llvmpipe, with their own threads), which is never used: this
 * module refuses llvmpipe through OpenGL, and a GPU with a Vulkan driver is found through Vulkan.
 * Asking for Vulkan alone, while Deno creates its WebGPU instance (at the first adapter request),
 * saves about 20 MiB of memory here. Done only when `DENO_WEBGPU_BACKEND` is unset and may be
 * written without a prompt; the variable is removed again right after.
 *
 * @param request The adapter request.
 * @returns Its result, and whether Vulkan alone was asked for.
 */
async function withVulkanOnLinux<T>(request: () => Promise<T>): Promise<{ result: T; vulkanOnly: boolean }> {
  if (osName() !== "linux") return { result: await request(), vulkanOnly: false };
  const { result, set } = await withEnv(BACKEND_VAR, "vulkan", request);
  return { result, vulkanOnly: set };
}

function defaultGpu(): GPU {
  const gpu = (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
  if (!gpu) {
    throw new WebGPUUnavailableError(
      `Cannot run the model: this runtime has no WebGPU (navigator.gpu); use Deno 2 or a browser with WebGPU, or in Node pass { gpu: create([]) } from npm:webgpu`,
    );
  }
  return gpu;
}

/**
 * Returns the shared WebGPU device of a `GPU`, requesting it on first use.
 *
 * @param gpu The WebGPU entry point (default `navigator.gpu`).
 * @returns The device and facts about its adapter.
 * @throws {WebGPUUnavailableError} When WebGPU or an adapter is missing.
 */
export async function getGpu(gpu: GPU = defaultGpu()): Promise<GpuContext> {
  const have = shared.get(gpu);
  if (have) {
    const ctx = await have.catch(() => undefined);
    if (ctx && !ctx.lost) return ctx;
    shared.delete(gpu); // lost (or failed): ask for a new device
  }
  const p = requestGpu(gpu);
  shared.set(gpu, p);
  p.catch(() => {
    if (shared.get(gpu) === p) shared.delete(gpu);
  });
  return await p;
}

/**
 * Requests a new adapter and device (not the shared one); {@linkcode getGpu} is what models use.
 *
 * @param gpu The WebGPU entry point (default `navigator.gpu`).
 * @returns The device and facts about its adapter.
 * @throws {WebGPUUnavailableError} When WebGPU or an adapter is missing.
 */
export async function requestGpu(gpu: GPU = defaultGpu()): Promise<GpuContext> {
  const { result: adapter, vulkanOnly } = await withVulkanOnLinux(() =>
    gpu.requestAdapter({ powerPreference: "high-performance" })
  );
  if (!adapter) {
    const gl = vulkanOnly ? ` (only Vulkan was asked for; DENO_WEBGPU_BACKEND=gl asks for OpenGL)` : "";
    throw new WebGPUUnavailableError(
      `Cannot run the model: no WebGPU adapter was found${gl}, ${HOW_TO_GET_ONE}`,
    );
  }
  // Mesa's llvmpipe through OpenGL (what Deno finds on a Linux machine without Mesa's Vulkan
  // driver) runs these kernels about 100x slower than through Vulkan (lavapipe), and its matrix
  // kernel did not finish at all: refuse it with the fix rather than hang. It is told apart from
  // lavapipe by lacking shader-f16.
  const info0 = adapter.info;
  const cpu = Boolean(info0?.isFallbackAdapter) || /llvmpipe/i.test(info0?.description ?? "");
  if (cpu && /llvmpipe/i.test(info0?.description ?? "") && !adapter.features.has("shader-f16") && !allowSlow()) {
    throw new WebGPUUnavailableError(
      `Cannot run the model: the only WebGPU adapter is Mesa's llvmpipe through OpenGL, which is far too slow for it; install Mesa's Vulkan driver (apt-get install mesa-vulkan-drivers, or bash .ci/setup.sh)`,
    );
  }
  const a = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: a.maxStorageBufferBindingSize,
    maxBufferSize: a.maxBufferSize,
    maxComputeWorkgroupStorageSize: a.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: a.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeY: a.maxComputeWorkgroupSizeY,
    maxStorageBuffersPerShaderStage: Math.min(a.maxStorageBuffersPerShaderStage, 10),
  };
  const timestamps = adapter.features.has("timestamp-query");
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({
      requiredLimits,
      requiredFeatures: timestamps ? ["timestamp-query"] : [],
    });
  } catch (e) {
    throw new WebGPUUnavailableError(
      `Cannot run the model: the WebGPU adapter refused a device (${(e as Error).message}), ${HOW_TO_GET_ONE}`,
    );
  }
  track(device);
  const info = adapter.info;
  // browsers may leave the description and device empty (privacy) but name the vendor and architecture
  const description = info?.description || info?.device ||
    [info?.vendor, info?.architecture].filter(Boolean).join(" ") || "unknown adapter";
  const ctx: GpuContext = {
    device,
    description,
    isCpu: Boolean(info?.isFallbackAdapter) || /llvmpipe|lavapipe|swiftshader|warp/i.test(description),
    timestamps,
  };
  device.lost.then((lost) => {
    ctx.lost = `${lost.reason ?? "unknown"}: ${lost.message || "no message"}`;
  });
  return ctx;
}

/**
 * Destroys the shared device of a `GPU`, if one was made: models on it stop working. For a program
 * that ends on a runtime which does not free devices itself (`npm:webgpu` in Node or under
 * `deno test` needs it, or the process crashes or stays alive at exit).
 *
 * @param gpu The WebGPU entry point (default `navigator.gpu`).
 */
export async function releaseGpu(gpu: GPU = defaultGpu()): Promise<void> {
  const have = shared.get(gpu);
  shared.delete(gpu);
  const ctx = await have?.catch(() => undefined);
  ctx?.device.destroy();
}
