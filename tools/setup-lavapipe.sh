#!/usr/bin/env bash
# A software Vulkan GPU for the webgpu backend's tests: Mesa's lavapipe, which runs Vulkan on the CPU.
#
# Dawn (the `webgpu` package) needs Mesa >= 25: bookworm's Mesa 22.3 lavapipe lacks features Dawn
# requires (shader*ArrayDynamicIndexing), so mesa-vulkan-drivers comes from bookworm-backports.
# Idempotent: does nothing when a new enough lavapipe is installed. Prints the ICD file to point
# VK_ICD_FILENAMES at (the tests find it themselves under /usr/share/vulkan/icd.d, lvp_icd*.json).
set -euo pipefail

MIN_MESA_MAJOR=25
ICD_DIR=/usr/share/vulkan/icd.d

installed_mesa_major() {
  dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | sed -E 's/^([0-9]+:)?([0-9]+).*/\2/' || true
}

icd_file() {
  ls "$ICD_DIR"/lvp_icd*.json 2>/dev/null | head -n 1
}

major="$(installed_mesa_major)"
if [ -n "$major" ] && [ "$major" -ge "$MIN_MESA_MAJOR" ] && [ -n "$(icd_file)" ] && dpkg -s libvulkan1 >/dev/null 2>&1; then
  echo "lavapipe: Mesa $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers) already installed ($(icd_file))"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "lavapipe: apt-get not found; install Mesa >= $MIN_MESA_MAJOR's Vulkan drivers (lavapipe) yourself to run the webgpu tests on the CPU" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
if [ "$codename" = "bookworm" ]; then
  # Add bookworm-backports unless some apt source already names it.
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "lavapipe: adding the bookworm-backports apt source"
    $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  fi
  target=(-t bookworm-backports)
else
  # Newer releases (trixie and later) ship Mesa >= 25 in their main suite.
  target=()
fi

echo "lavapipe: installing mesa-vulkan-drivers ${target[*]:-}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${target[@]}" mesa-vulkan-drivers libvulkan1 >/dev/null

major="$(installed_mesa_major)"
if [ -z "$major" ] || [ "$major" -lt "$MIN_MESA_MAJOR" ] || [ -z "$(icd_file)" ]; then
  echo "lavapipe: got Mesa '${major:-none}', need >= $MIN_MESA_MAJOR with $ICD_DIR/lvp_icd*.json" >&2
  exit 1
fi
echo "lavapipe: Mesa $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers) installed; VK_ICD_FILENAMES=$(icd_file)"
