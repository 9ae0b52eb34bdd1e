#!/usr/bin/env bash
# Builds gpu-bundle/gpu-check.tar.xz: everything bench/gpu-check.sh needs on a GPU machine with no network
# and perhaps no Node.js, in one file under 60 MB:
#   node                      this machine's Node binary (x86-64 Linux; needs glibc >= 2.28)
#   app/gpu-check.mjs         bench/gpu-check/main.ts bundled by esbuild (tfjs, the engine, the check)
#   app/node_modules/webgpu/  the webgpu package's loader and its Linux x64 dawn.node (Dawn; glibc >= 2.34)
#   lib/libvulkan.so.1        the Vulkan loader (libvulkan1), used only where the machine has none
#   fixtures/parity/          the parity fixtures (transformers + PEFT outputs)
# Run from anywhere: bash tools/make-gpu-bundle.sh. gpu-bundle/ is a build output (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT_DIR="$ROOT/gpu-bundle"
ARCHIVE="$OUT_DIR/gpu-check.tar.xz"
LIMIT_BYTES=$((60 * 1000 * 1000))

[ "$(uname -m)" = "x86_64" ] || { echo "make-gpu-bundle: this machine is $(uname -m); the bundle must be built on x86-64 Linux" >&2; exit 1; }
DAWN="node_modules/webgpu/dist/linux-x64/dawn.node"
[ -f "$DAWN" ] || { echo "make-gpu-bundle: $DAWN is missing; run npm install first" >&2; exit 1; }
NODE_BIN="$(command -v node)"

STAGE="$(mktemp -d /tmp/gpu-bundle.XXXXXX)"
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/app/node_modules/webgpu/dist/linux-x64" "$STAGE/lib" "$STAGE/fixtures"

echo "make-gpu-bundle: bundling bench/gpu-check/main.ts"
node --input-type=module - "$ROOT" "$STAGE/app/gpu-check.mjs" <<'EOF'
import { build } from 'esbuild';
import { join } from 'node:path';
const [root, outfile] = process.argv.slice(2);
await build({
  entryPoints: [join(root, 'bench/gpu-check/main.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  // Dawn is a native addon: it stays a package beside the bundle.
  external: ['webgpu'],
  // ES module builds first: one copy of tfjs-core shared with register_all_gradients (itself ESM).
  mainFields: ['module', 'main'],
  logLevel: 'warning',
  banner: {
    js: [
      "import { createRequire as __createRequire } from 'node:module';",
      "import { fileURLToPath as __fileURLToPath } from 'node:url';",
      'const require = __createRequire(import.meta.url);',
      'const __filename = __fileURLToPath(import.meta.url);',
      "const __dirname = __filename.slice(0, __filename.lastIndexOf('/'));",
    ].join(' '),
  },
});
EOF

# The webgpu package, Linux x64 only: its index.js loads dist/<platform>-<arch>/dawn.node.
for f in package.json index.js LICENSE.md; do cp "node_modules/webgpu/$f" "$STAGE/app/node_modules/webgpu/"; done
cp "$DAWN" "$STAGE/app/node_modules/webgpu/dist/linux-x64/"

# The Vulkan loader: the installed libvulkan1, else its Debian package.
VULKAN="$(ls /usr/lib/x86_64-linux-gnu/libvulkan.so.1.* 2>/dev/null | head -n 1 || true)"
if [ -z "$VULKAN" ]; then
  (cd "$STAGE" && apt-get download libvulkan1 >/dev/null && dpkg -x libvulkan1_*.deb deb && rm libvulkan1_*.deb)
  VULKAN="$(ls "$STAGE"/deb/usr/lib/x86_64-linux-gnu/libvulkan.so.1.* | head -n 1)"
fi
cp "$VULKAN" "$STAGE/lib/libvulkan.so.1"
rm -rf "$STAGE/deb"

# NVIDIA's Vulkan driver (libGLX_nvidia.so.0) links against the GL vendor-neutral dispatch libraries
# (libglvnd): a bare CUDA image lacks them and the loader then finds "no drivers". Bundle them too.
mkdir -p "$STAGE/lib/glvnd"
(cd "$STAGE" && apt-get download libglvnd0 libglx0 libegl1 libopengl0 libgl1 >/dev/null && for d in *.deb; do dpkg -x "$d" deb; done && rm -f ./*.deb)
cp -a "$STAGE"/deb/usr/lib/x86_64-linux-gnu/lib*.so* "$STAGE/lib/glvnd/"
rm -rf "$STAGE/deb"

cp -r test/fixtures/parity "$STAGE/fixtures/"
cp "$NODE_BIN" "$STAGE/node"
"$STAGE/node" --version >"$STAGE/NODE_VERSION"
git rev-parse HEAD >"$STAGE/SOURCE_COMMIT" 2>/dev/null || echo unknown >"$STAGE/SOURCE_COMMIT"

mkdir -p "$OUT_DIR"
echo "make-gpu-bundle: compressing (xz -9)"
tar -C "$STAGE" -cf - . | xz -9 -T0 >"$ARCHIVE.tmp"
mv "$ARCHIVE.tmp" "$ARCHIVE"
size=$(stat -c %s "$ARCHIVE")
echo "make-gpu-bundle: $ARCHIVE, $((size / 1000000)) MB (node $(cat "$STAGE/NODE_VERSION"), $(du -sh "$STAGE" | cut -f1) unpacked)"
if [ "$size" -gt "$LIMIT_BYTES" ]; then
  echo "make-gpu-bundle: the bundle is over 60 MB" >&2
  exit 1
fi
