#!/usr/bin/env bash
# One run on a machine with a real GPU:
# the test suite, the comparison table (PyTorch is skipped there), the decode-step profile, and
# decode speed with one and with four k-quads in flight per matrix-kernel loop trip (GPT_WEBGPU_MM_UNROLL)
# and with 8 instead of 16 columns per matrix workgroup (GPT_WEBGPU_MM_WG).
# Output goes to $OUT (or ./device-out).
set -uo pipefail
out=${OUT:-device-out}
mkdir -p "$out"
{
  date -u
  deno --version | head -1
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
  deno run -A bench/compare.ts --reps 3
  deno run -A bench/profile.ts f32 64
  deno run -A bench/profile.ts f16 64
  deno run -A bench/decode_speed.ts
  echo "# GPT_WEBGPU_MM_UNROLL=1 (the default on a GPU is 4 for one-row products)"
  GPT_WEBGPU_MM_UNROLL=1 deno run -A bench/decode_speed.ts
  echo "# GPT_WEBGPU_MM_WG=2 (8 columns per matrix workgroup instead of 16: twice the workgroups)"
  GPT_WEBGPU_MM_WG=2 deno run -A bench/decode_speed.ts
} 2>&1 | tee "$out/bench.txt"
NO_COLOR=1 timeout 240 deno test -A tests/ 2>&1 | tail -60 > "$out/tests.txt"
tail -3 "$out/tests.txt"
