#!/usr/bin/env bash
# The GPU check: unpacks gpu-bundle/gpu-check.tar.xz (tools/make-gpu-bundle.sh), then runs the webgpu
# backend's parity checks and a training/decode benchmark on a 7B-shaped model (or the largest that fits),
# printing tokens/s and memory. Needs no network, no npm and no Node.js install: the bundle brings Node,
# Dawn and the Vulkan loader; the machine brings its GPU driver (for NVIDIA, its Vulkan ICD).
#
#   bash bench/gpu-check.sh [path/to/gpu-check.tar.xz]
#
# Environment: GPU_CHECK_SHAPE=auto|7b|3b|1b|small|tiny and the other GPU_CHECK_* settings of
# bench/gpu-check/main.ts; GPU_CHECK_TIMEOUT_S (default 450) bounds the whole program;
# GPU_CHECK_BUNDLED=1 uses the bundled Node and Vulkan loader even where the machine has its own.
# With $OUT set (the device runner), the log and result JSON are copied there.
set -uo pipefail
cd "$(dirname "$0")/.."
BUNDLE="${1:-gpu-bundle/gpu-check.tar.xz}"
TIMEOUT_S="${GPU_CHECK_TIMEOUT_S:-450}"
[ -f "$BUNDLE" ] || { echo "gpu-check: $BUNDLE not found; build it with: bash tools/make-gpu-bundle.sh" >&2; exit 2; }

WORK="$(mktemp -d /tmp/gpu-check.XXXXXX)"
SAMPLER_PID=""
cleanup() {
  [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
t0=$(date +%s)
# xz may be missing from a minimal image; Python's tarfile reads .tar.xz too.
if command -v xz >/dev/null 2>&1; then
  tar -xJf "$BUNDLE" -C "$WORK"
else
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$BUNDLE" "$WORK"
fi || { echo "gpu-check: could not unpack $BUNDLE" >&2; exit 2; }
chmod +x "$WORK/node"
echo "gpu-check: unpacked $BUNDLE in $(( $(date +%s) - t0 )) s (built from commit $(cat "$WORK/SOURCE_COMMIT"))"

# Node: the machine's own if it is 20 or newer, else the bundled one.
NODE="$WORK/node"
BUNDLED_ONLY="${GPU_CHECK_BUNDLED:-0}"
if [ "$BUNDLED_ONLY" != 1 ] && command -v node >/dev/null 2>&1 && [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -ge 20 ]; then
  NODE="$(command -v node)"
fi
echo "gpu-check: node $("$NODE" --version) ($NODE)"

# The Vulkan loader: the machine's, else the bundled libvulkan.so.1.
if [ "$BUNDLED_ONLY" != 1 ] && ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1 '; then
  echo "gpu-check: Vulkan loader from the system"
else
  export LD_LIBRARY_PATH="$WORK/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "gpu-check: Vulkan loader from the bundle (libvulkan1 $(basename "$(readlink -f "$WORK/lib/libvulkan.so.1")"))"
fi
# The GL dispatch libraries NVIDIA's Vulkan driver needs, where the machine has none (bare CUDA images).
if ! ldconfig -p 2>/dev/null | grep -q 'libGLdispatch\.so\.0 '; then
  export LD_LIBRARY_PATH="$WORK/lib/glvnd${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "gpu-check: GL dispatch libraries (libglvnd) from the bundle"
fi
# NVIDIA's Vulkan driver manifest where containers mount the driver (/usr/local/nvidia); a normal install
# puts it where the loader looks by itself.
if [ -z "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ]; then
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/local/nvidia/icd.d/nvidia_icd.json; do
    if [ -f "$icd" ]; then
      export VK_DRIVER_FILES="$icd" VK_ICD_FILENAMES="$icd"
      echo "gpu-check: Vulkan driver $icd"
      break
    fi
  done
fi

# The GPU's memory, which WebGPU cannot report, and a sampler for the peak in use.
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader | sed 's/^/gpu-check: nvidia-smi: /'
  mib="$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -n 1 | tr -d ' ')"
  [ -n "$mib" ] && export GPU_CHECK_MEMORY_MIB="${GPU_CHECK_MEMORY_MIB:-$mib}"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 >"$WORK/memory.log" 2>/dev/null &
  SAMPLER_PID=$!
fi

export GPU_CHECK_FIXTURES="${GPU_CHECK_FIXTURES:-$WORK/fixtures/parity}"
export GPU_CHECK_RESULT="$WORK/result.json"
export GPU_CHECK_BUDGET_S="${GPU_CHECK_BUDGET_S:-$((TIMEOUT_S - 40))}"
echo "gpu-check: running (budget ${GPU_CHECK_BUDGET_S} s, hard limit ${TIMEOUT_S} s, shape ${GPU_CHECK_SHAPE:-auto})"
timeout --kill-after=10 "$TIMEOUT_S" "$NODE" "$WORK/app/gpu-check.mjs" 2>&1 | tee "$WORK/gpu-check.log"
status=${PIPESTATUS[0]}
[ "$status" -eq 124 ] && echo "gpu-check: stopped after ${TIMEOUT_S} s"

if [ -n "$SAMPLER_PID" ]; then
  kill "$SAMPLER_PID" 2>/dev/null
  wait "$SAMPLER_PID" 2>/dev/null
  SAMPLER_PID=""
  peak="$(sort -n "$WORK/memory.log" | tail -n 1)"
  [ -n "$peak" ] && echo "gpu-check: peak GPU memory used (nvidia-smi, sampled every 0.5 s): ${peak} MiB"
fi
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  cp "$WORK/gpu-check.log" "$OUT/" 2>/dev/null
  [ -f "$WORK/result.json" ] && cp "$WORK/result.json" "$OUT/gpu-check-result.json"
fi
echo "gpu-check: exit status $status (0 passed, 1 parity failed, 2 webgpu did not start, 3 benchmark failed, 124 timed out)"
exit "$status"
