#!/usr/bin/env bash
# One run on a machine with an NVIDIA GPU, in order of what matters most:
# decode speed (with the process's CPU time per token) with the default kernels and with the other
# attention kernel (the `backend` option), the decode-step profile, the comparison table against
# PyTorch on the same GPU (when `python3` there has PyTorch with CUDA), training and prompt speed
# against PyTorch (chapter 5), then the tests.
# Each step has its own time limit; output goes to $OUT (or ./device-out) as it is written.
# `bash bench/device_check.sh quick` runs only the default kernels: decode speed, profile, comparison, tests.
#
#   bash ../shared/gpu/bundle.sh        # here, with network: Deno, its cache, the Vulkan loader
#   bash .gpu/run.sh bash bench/device_check.sh        # there
#
# Where the GPU's Vulkan driver needs X11 libraries the machine lacks, Debian packages of them in
# .gpu/xdebs are unpacked into /tmp/xlibs and put on LD_LIBRARY_PATH (not into /).
set -uo pipefail
out=${OUT:-device-out}
mkdir -p "$out"
if ! ldconfig -p | grep -q 'libX11.so.6 ' && compgen -G ".gpu/xdebs/*.deb" >/dev/null; then
  for f in .gpu/xdebs/*.deb; do dpkg -x "$f" /tmp/xlibs; done
  export LD_LIBRARY_PATH=/tmp/xlibs/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  echo "X11 libraries from .gpu/xdebs"
fi
step() { # step SECONDS TITLE COMMAND...
  local s=$1 title=$2
  shift 2
  echo "## $title"
  local t0=$SECONDS
  timeout "$s" "$@"
  echo "## ($title: exit $?, $((SECONDS - t0)) s)"
}
quick=$([ "${1:-}" = quick ] && echo 1)
py=$(command -v python3 || echo /usr/bin/python3)
{
  date -u
  deno --version | head -1
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>&1
  step 30 "adapter" deno run -A bench/adapter_probe.ts
  step 120 "decode speed" deno run -A bench/decode_speed.ts
  [ "$quick" ] || step 90 "attention parts (the workgroup-wide attention kernel instead of key blocks)" \
    deno run -A bench/decode_speed.ts '{"attention":"parts"}'
  step 60 "profile f32" deno run -A bench/profile.ts f32 64
  [ "$quick" ] || step 60 "profile f16" deno run -A bench/profile.ts f16 64
  [ "$quick" ] || step 60 "profile f32 at position 500" deno run -A bench/profile.ts f32 500
  step 180 "comparison, PyTorch on the GPU" deno run -A bench/compare.ts --reps 3 --python "$py" --torch-device cuda
  step 240 "training (124M, batch 2 x context 256) and a 512-token prompt against PyTorch on the GPU" \
    deno run -A bench/train_compare.ts --rounds 3 --steps 3 --python "$py" --torch-device cuda
  [ "$quick" ] || step 120 "training step profile (124M, batch 2 x context 256)" deno run -A bench/train_profile.ts 2 256
} 2>&1 | tee "$out/bench.txt"
NO_COLOR=1 timeout 200 deno test -A tests/ > "$out/tests.txt" 2>&1
echo "tests: exit $?"
grep -E "^(ok|FAILED)|passed|failed" "$out/tests.txt" | tail -5
