/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * The worker that holds a served model and its batcher (see `_worker_backend.ts`): it loads the
 * model, runs the requests it is sent, and posts each chunk back. Blocking this thread while the
 * GPU works is fine, so steps go to the GPU whole.
 *
 * @module
 */

import { GPTModel } from "../model/model.ts";
import type { BatchRequest } from "../model/batcher.ts";
import { LocalBackend } from "./serving_backend.ts";
import { loadModel } from "./_load.ts";
import type { ModelSpec, WireError, WorkerCall, WorkerReply } from "./_worker_backend.ts";

let model: GPTModel | undefined;
let backend: LocalBackend | undefined;
const reqs = new Map<number, BatchRequest>();
const prompts = new Map<number, AbortController>();

const post = (m: WorkerReply, transfer: Transferable[] = []) => self.postMessage(m, { transfer });
const wire = (e: unknown): WireError => ({
  name: (e as Error)?.name ?? "Error",
  message: (e as Error)?.message ?? String(e),
});
const stats = () => ({ active: backend!.active, queued: backend!.queued, steps: backend!.steps });

async function load(spec: ModelSpec): Promise<GPTModel> {
  // this thread does nothing else: whole steps per submission
  const backendOptions = { submitSteps: 32, submitBlocks: 0 };
  const dtype = spec.dtype ?? "f32";
  if (spec.config) {
    return await GPTModel.create(spec.config, { seed: spec.seed ?? 123, dtype, backend: backendOptions });
  }
  const source = {
    model: spec.hub,
    weights: spec.weights,
    revision: spec.revision,
    offline: spec.offline,
    dtype,
    seed: spec.seed ?? 123,
    quiet: spec.quiet ?? false,
  };
  return await loadModel(source, (text) => post({ type: "log", text }), backendOptions);
}

async function relay(id: number, r: BatchRequest): Promise<void> {
  try {
    for await (const c of r) {
      post({ type: "chunk", id, ids: c.ids, logprobs: c.logprobs, cached: r.cachedTokens, stats: stats() });
    }
    const res = await r.result;
    post({ type: "done", id, reason: res.finishReason, cached: r.cachedTokens, stats: stats() });
  } catch (e) {
    post({ type: "failed", id, error: wire(e), stats: stats() });
  } finally {
    reqs.delete(id);
  }
}

self.onmessage = async (e: MessageEvent<WorkerCall>) => {
  const m = e.data;
  try {
    if (m.type === "init") {
      model = await load(m.spec);
      backend = new LocalBackend(model, m.batcher);
      // compile the kernels of a first request now rather than during it
      await backend.add([0], { maxNewTokens: 2 }).result;
      post({ type: "ready", config: model.config });
    } else if (m.type === "add") {
      let r: BatchRequest;
      try {
        r = backend!.add(m.prompt, m.options);
      } catch (err) {
        post({ type: "failed", id: m.id, error: wire(err), stats: stats() });
        return;
      }
      reqs.set(m.id, r);
      relay(m.id, r);
    } else if (m.type === "cancel") reqs.get(m.id)?.cancel();
    else if (m.type === "prompt") {
      const stop = new AbortController();
      prompts.set(m.id, stop);
      try {
        post({ type: "prompt", id: m.id, result: await backend!.promptLogprobs(m.ids, m.n, stop.signal) });
      } catch (err) {
        post({ type: "prompt", id: m.id, error: wire(err) });
      } finally {
        prompts.delete(m.id);
      }
    } else if (m.type === "cancel_prompt") prompts.get(m.id)?.abort();
    else if (m.type === "close") {
      await backend?.close();
      model?.destroy();
      post({ type: "closed" });
      self.close();
    }
  } catch (err) {
    post({ type: "fatal", error: wire(err) });
  }
};
