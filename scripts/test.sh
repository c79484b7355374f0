#!/usr/bin/env bash
# Runs every test: installs what they need (scripts/setup.sh), then formatting, lints, the
# GStreamer-free server build, the whole `cargo test` suite, the browser tests and the Pi stage
# (scripts/test-pi.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

echo "==> roomcam-server builds without the device features (no GStreamer, no ALSA)"
cargo build --bin roomcam-server --no-default-features --features server
if ldd target/debug/roomcam-server | grep -Ei 'gst|asound'; then
  echo "roomcam-server links GStreamer or ALSA" >&2
  exit 1
fi

echo "==> cargo test"
cargo test

echo "==> browser tests (headless Chromium)"
bash scripts/test-browser.sh

echo "==> Pi: cross builds, aarch64 tests under qemu-user, .debs, install check"
bash scripts/test-pi.sh
bash scripts/test-qemu.sh  # the aarch64 build on real drivers in QEMU (docs/qemu.md)
