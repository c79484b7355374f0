#!/usr/bin/env bash
# Runs every test: installs what they need (scripts/setup.sh), then formatting, lints, the
# GStreamer-free server build, the whole `cargo test` suite, the browser tests, the Pi stage
# (aarch64 cross build, its tests under qemu-user, the .deb installed in an emulated Debian),
# the QEMU system test (that build on real kernel drivers), the `cross` stage (armv7 through podman, the armhf .deb) and the fuzz targets
# (scripts/test-fuzz.sh).
# With ROOMCAM_CI=1 (set by .ci/run) each stage's build output is removed once the stage is
# done, so the whole run fits a CI machine's disk.
set -euo pipefail
cd "$(dirname "$0")/.."

t0=$SECONDS
stage() { printf '\n==> [%dm%02ds] %s\n' $(((SECONDS - t0) / 60)) $(((SECONDS - t0) % 60)) "$*"; }
ci_free() { if [ "${ROOMCAM_CI:-0}" = 1 ]; then rm -rf "$@"; fi; }
df -h . | tail -1 | awk '{print "disk: " $4 " free of " $2}'

stage "setup"
bash scripts/setup.sh

stage "cargo fmt --check"
cargo fmt --all -- --check

stage "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

stage "roomcam-server builds without the device features (no GStreamer, no ALSA)"
cargo build --bin roomcam-server --no-default-features --features server
if ldd target/debug/roomcam-server | grep -Ei 'gst|asound'; then
  echo "roomcam-server links GStreamer or ALSA" >&2
  exit 1
fi

stage "cargo test"
cargo test --no-fail-fast

stage "browser tests (headless Chromium)"
bash scripts/test-browser.sh
ci_free target/debug

stage "Pi: aarch64 sysroot, cross build, tests under qemu-user, .deb, install check (scripts/test-pi.sh)"
PI_TARGETS=aarch64 PI_STEPS="sysroot test deb install" bash scripts/test-pi.sh

stage "QEMU system test: the aarch64 build on real kernel drivers (scripts/test-qemu.sh, docs/qemu.md)"
# The release binaries the Pi stage built and packaged, booted under qemu-system-aarch64 (TCG)
# with vivid, snd-aloop, virtio-gpu KMS and the PL061 button; screendumps, logs and the
# report stay in artifacts/qemu.
ROOMCAM_QEMU_BIN=target/aarch64-unknown-linux-gnu/release bash scripts/test-qemu.sh
ci_free target/aarch64-unknown-linux-gnu target/release

stage "Pi: cross build --release for armv7 through podman, its binaries started, armhf .deb (scripts/test-cross.sh)"
bash scripts/test-cross.sh

stage "fuzzing (cargo-fuzz, FUZZ_SECONDS per target; docs/fuzzing.md)"
FUZZ_SECONDS=${FUZZ_SECONDS:-30} bash scripts/test-fuzz.sh
ci_free fuzz/target

stage "all tests passed"
