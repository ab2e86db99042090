// The training matrix kernels against a float64 reference on shapes the model never makes: rows and
// columns that are not multiples of the 64 x 32 tile, offsets and strides, bias and accumulation.
import { getGpu } from "../src/gpu/device.ts";
import { Program, trainPipelines } from "../src/engine/training/_program.ts";
import { TrainOps } from "../src/engine/training/_ops.ts";
import { readFloats } from "../src/model/_trainable.ts";
import { TorchGenerator } from "../src/weights/torch_random.ts";
import { assertClose, randomArray } from "./_helpers.ts";

const { device } = await getGpu();
const pipes = await trainPipelines(device);
const g = new TorchGenerator(11);

function upload(data: Float32Array): GPUBuffer {
  const b = device.createBuffer({
    size: Math.max(16, data.byteLength),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
  });
  device.queue.writeBuffer(b, 0, data as Float32Array<ArrayBuffer>);
  return b;
}

async function run(record: (o: TrainOps) => void, out: GPUBuffer, n: number): Promise<Float32Array> {
  const prog = new Program(device, pipes);
  record(new TrainOps(prog, upload(new Float32Array(4))));
  const enc = device.createCommandEncoder();
  prog.encode(enc);
  device.queue.submit([enc.finish()]);
  return await readFloats(device, out, 0, n);
}

// shapes: [M, N, K] with M and N off the tile, K a multiple of 4 (vec4 loads)
const SHAPES = [[1, 4, 4], [7, 12, 8], [65, 36, 20], [130, 100, 64], [3, 257, 44]];

Deno.test("mm_nt: C = A B^T + bias, added to C, at offsets and strides, equals float64", async () => {
  for (const [M, N, K] of SHAPES) {
    const lda = K + 4, ldb = K + 8, ldc = N + 3, a0 = 8, b0 = 4, c0 = 5;
    const A = randomArray(g, a0 + M * lda), B = randomArray(g, b0 + N * ldb), bias = randomArray(g, N);
    const C = randomArray(g, c0 + M * ldc);
    const want = Float64Array.from(C);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += A[a0 + m * lda + k] * B[b0 + n * ldb + k];
        want[c0 + m * ldc + n] += s + bias[n];
      }
    }
    const out = upload(C);
    const got = await run(
      (o) =>
        o.mmNT({ buffer: upload(A), ld: lda, at: a0 }, { buffer: upload(B), ld: ldb, at: b0 }, {
          buffer: out,
          ld: ldc,
          at: c0,
        }, { M, N, K, bias: upload(bias), acc: true }),
      out,
      C.length,
    );
    assertClose(got, want, 1e-5, 1e-5, `mm_nt ${M}x${N}x${K}`);
  }
});

Deno.test("mm_nn and mm_tn (a linear layer's dx and dW) equal float64", async () => {
  for (const [M, N, K] of SHAPES) {
    // mm_nn: C[M, N] = A[M, K] B[K, N]; N must be a multiple of 4, A zero past K up to a multiple of 4
    const Nn = Math.ceil(N / 4) * 4, Kp = Math.ceil(K / 4) * 4;
    const A = randomArray(g, M * Kp), B = randomArray(g, K * Nn);
    const want = new Float64Array(M * Nn);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < Nn; n++) for (let k = 0; k < K; k++) want[m * Nn + n] += A[m * Kp + k] * B[k * Nn + n];
    }
    const out = upload(new Float32Array(M * Nn));
    const got = await run(
      (o) =>
        o.mmNN({ buffer: upload(A), ld: Kp }, { buffer: upload(B), ld: Nn }, { buffer: out, ld: Nn }, { M, N: Nn, K }),
      out,
      M * Nn,
    );
    assertClose(got, want, 1e-5, 1e-5, `mm_nn ${M}x${Nn}x${K}`);
    // mm_tn: C[N, K] += A[M, N]^T B[M, K] (the weight gradient; A rows padded to a multiple of 4)
    const dy = randomArray(g, M * Nn), x = randomArray(g, M * Kp), dw = randomArray(g, N * Kp);
    const wantW = Float64Array.from(dw);
    for (let n = 0; n < N; n++) {
      for (let k = 0; k < Kp; k++) for (let m = 0; m < M; m++) wantW[n * Kp + k] += dy[m * Nn + n] * x[m * Kp + k];
    }
    const outW = upload(dw);
    const gotW = await run(
      (o) =>
        o.mmTN({ buffer: upload(dy), ld: Nn }, { buffer: upload(x), ld: Kp }, { buffer: outW, ld: Kp }, {
          M: N,
          N: Kp,
          K: M,
        }),
      outW,
      dw.length,
    );
    assertClose(gotW, wantW, 1e-5, 1e-5, `mm_tn ${N}x${Kp}x${M}`);
  }
});
