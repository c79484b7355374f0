#!/usr/bin/env bash
# Installs what building, running and testing roomcam needs on a fresh Debian 12 machine.
# Idempotent: packages already present are skipped by apt; it uses the machine's own apt sources.
# Usage: scripts/setup.sh            (everything: build, run, test)
#        ROOMCAM_SETUP_QUIET=1 scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Build tools and the libraries the crate links.
PKGS=(
  build-essential pkg-config cmake clang git ca-certificates
  # GStreamer (device side: capture, encode, decode, display) and ALSA
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-alsa
  libasound2-dev
  # textoverlay (the screen's idle card and the "Camera unavailable" card) is in Debian's -x package
  gstreamer1.0-x
  # token test vectors come from an independent implementation in Python
  python3 python3-cryptography
  # tools the tests and benchmarks use
  curl jq systemd nftables bc iproute2
  # Pi cross builds, qemu-user tests and .deb checks (scripts/test-pi.sh)
  mmdebstrap arch-test qemu-user-static binfmt-support file
  gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf
  # the QEMU system test (scripts/test-qemu.sh): an emulated arm64 board with real drivers
  qemu-system-arm
  # `cross build` through podman (scripts/test-cross.sh, scripts/cross-podman.sh; runc because
  # crun refuses cgroups in hybrid mode)
  podman runc
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

# Node.js and npm drive the browser tests. Debian's packages, unless a Node.js (for example
# from NodeSource, which bundles npm) is installed already: never replace that one.
if ! command -v npm >/dev/null 2>&1; then
  for p in nodejs npm; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
fi

if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  say "Debian packages already installed"
fi

if ! command -v cargo >/dev/null 2>&1; then
  say "cargo not found: install Rust 1.95 or newer with rustup (https://rustup.rs) and run this again"
  exit 1
fi
# The Pi targets' standard libraries (scripts/cross-build.sh).
if command -v rustup >/dev/null 2>&1; then
  rustup target add aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf >/dev/null
fi
# The browser tests: Debian's Chromium and the pinned npm packages.
bash scripts/setup-browser.sh

say "setup done"
