#!/usr/bin/env bash
# Runs every test: installs what they need (scripts/setup.sh), then formatting, lints, the
# GStreamer-free server build, the whole `cargo test` suite, the browser tests and the fuzz
# targets (scripts/test-fuzz.sh).
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

# The Pi stage (scripts/test-pi.sh: aarch64 cross build, tests under qemu-user, .deb, install
# check) is not run here yet: under qemu-user the unit test
# media::publish::tests::a_silent_camera_is_replaced_by_the_next_candidate fails (its first-frame
# timeout is shorter than emulated GStreamer needs). README "Building for the Pi".
# Nor the QEMU system test (scripts/test-qemu.sh, docs/qemu.md): the whole call does not pass yet.

stage "fuzzing (cargo-fuzz, FUZZ_SECONDS per target; docs/fuzzing.md)"
FUZZ_SECONDS=${FUZZ_SECONDS:-30} bash scripts/test-fuzz.sh
ci_free fuzz/target

stage "all tests passed"
