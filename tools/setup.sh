#!/usr/bin/env bash
# One-time set-up on a fresh machine: system packages (when apt is there), npm dependencies,
# the native addon (built by npm's postinstall) and the bundles in dist/.
set -euo pipefail
cd "$(dirname "$0")/.."

# OpenBLAS for the native CPU backend; a C toolchain and Python for node-gyp; Pillow for the test that rebuilds the
# starter picture dataset; Chromium for the end-to-end tests and for serve mode's screenshots.
APT_PACKAGES=(libopenblas-dev build-essential python3 python3-pil chromium)
if command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
else
  echo "apt-get not found: install OpenBLAS (or use macOS's Accelerate), a C/C++ toolchain and Python 3 yourself; see README."
fi

# A software Vulkan GPU (Mesa 25 lavapipe) so the webgpu backend's tests run on any machine.
if command -v apt-get >/dev/null 2>&1; then bash tools/setup-lavapipe.sh; fi

# The Electron binary cannot always be downloaded (offline machines, CI): the app then runs in serve mode.
export ELECTRON_SKIP_BINARY_DOWNLOAD="${ELECTRON_SKIP_BINARY_DOWNLOAD:-1}"
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
npm run build
