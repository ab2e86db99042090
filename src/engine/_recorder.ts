/**
 * Where a step's dispatches go: one compute pass ({@linkcode PassRecorder}), a list to count or
 * replay ({@linkcode ListRecorder}), or one timed pass each ({@linkcode TimedRecorder}).
 *
 * @module
 */

import { BufferUsage, MapMode } from "../gpu/flags.ts";

/** An indirect dispatch's sizes: three u32 at `offset` in `buffer`. */
export type Indirect = [buffer: GPUBuffer, offset: number];

/** Where dispatches go: one compute pass, or one timed pass each. */
export interface Recorder {
  dispatch(name: string, pipe: GPUComputePipeline, group: GPUBindGroup, x: number, y?: number, z?: number): void;
  dispatchIndirect(name: string, pipe: GPUComputePipeline, group: GPUBindGroup, at: Indirect): void;
}

export class PassRecorder implements Recorder {
  #pass: GPUComputePassEncoder;
  #pipe?: GPUComputePipeline;
  constructor(pass: GPUComputePassEncoder) {
    this.#pass = pass;
  }
  #bind(pipe: GPUComputePipeline, group: GPUBindGroup): void {
    if (pipe !== this.#pipe) this.#pass.setPipeline(this.#pipe = pipe);
    this.#pass.setBindGroup(0, group);
  }
  dispatch(_name: string, pipe: GPUComputePipeline, group: GPUBindGroup, x: number, y = 1, z = 1): void {
    this.#bind(pipe, group);
    this.#pass.dispatchWorkgroups(x, y, z);
  }
  dispatchIndirect(_name: string, pipe: GPUComputePipeline, group: GPUBindGroup, at: Indirect): void {
    this.#bind(pipe, group);
    this.#pass.dispatchWorkgroupsIndirect(...at);
  }
}

export interface Call {
  name: string;
  pipe: GPUComputePipeline;
  group: GPUBindGroup;
  x: number;
  y: number;
  z: number;
  indirect?: Indirect;
}

/** Sends a recorded call to another recorder. */
export function replay(rec: Recorder, c: Call): void {
  if (c.indirect) rec.dispatchIndirect(c.name, c.pipe, c.group, c.indirect);
  else rec.dispatch(c.name, c.pipe, c.group, c.x, c.y, c.z);
}

export class ListRecorder implements Recorder {
  calls: Call[] = [];
  dispatch(name: string, pipe: GPUComputePipeline, group: GPUBindGroup, x: number, y = 1, z = 1): void {
    this.calls.push({ name, pipe, group, x, y, z });
  }
  dispatchIndirect(name: string, pipe: GPUComputePipeline, group: GPUBindGroup, indirect: Indirect): void {
    this.calls.push({ name, pipe, group, x: 0, y: 0, z: 0, indirect });
  }
}

export class TimedRecorder implements Recorder {
  names: string[] = [];
  #enc: GPUCommandEncoder;
  #qs: GPUQuerySet;
  #dev: GPUDevice;
  constructor(dev: GPUDevice, enc: GPUCommandEncoder, max: number) {
    this.#dev = dev;
    this.#enc = enc;
    this.#qs = dev.createQuerySet({ type: "timestamp", count: 2 * max });
  }
  dispatch(name: string, pipe: GPUComputePipeline, group: GPUBindGroup, x: number, y = 1, z = 1): void {
    this.#timed(name, pipe, group, (pass) => pass.dispatchWorkgroups(x, y, z));
  }
  dispatchIndirect(name: string, pipe: GPUComputePipeline, group: GPUBindGroup, at: Indirect): void {
    this.#timed(name, pipe, group, (pass) => pass.dispatchWorkgroupsIndirect(...at));
  }
  #timed(name: string, pipe: GPUComputePipeline, group: GPUBindGroup, go: (p: GPUComputePassEncoder) => void): void {
    const i = this.names.length;
    this.names.push(name);
    const pass = this.#enc.beginComputePass({
      timestampWrites: { querySet: this.#qs, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
    });
    pass.setPipeline(pipe);
    pass.setBindGroup(0, group);
    go(pass);
    pass.end();
  }
  async read(wait: (p: Promise<void>) => Promise<void>): Promise<number[]> {
    const n = this.names.length * 2;
    const res = this.#dev.createBuffer({ size: n * 8, usage: BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC });
    const out = this.#dev.createBuffer({ size: n * 8, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
    try {
      this.#enc.resolveQuerySet(this.#qs, 0, n, res, 0);
      this.#enc.copyBufferToBuffer(res, 0, out, 0, n * 8);
      this.#dev.queue.submit([this.#enc.finish()]);
      await wait(out.mapAsync(MapMode.READ));
      const t = new BigInt64Array(out.getMappedRange());
      return this.names.map((_, i) => Number(t[2 * i + 1] - t[2 * i]) / 1e6);
    } finally {
      res.destroy();
      out.destroy();
      this.#qs.destroy();
    }
  }
}
