#!/usr/bin/env bash
# CI stage: runs every fuzz target briefly (scripts/fuzz.sh), FUZZ_SECONDS each (default 60).
# Installs what it needs when missing: a nightly toolchain (rustup, minimal profile) and
# cargo-fuzz (from crates.io, --locked). Fails when a target finds a crash; the crash file and
# the command that reproduces it are printed (docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}
if ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
  echo "==> installing the $TOOLCHAIN toolchain (cargo fuzz needs nightly)"
  rustup toolchain install "$TOOLCHAIN" --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> cargo install cargo-fuzz --locked"
  cargo install cargo-fuzz --locked
fi

echo "==> fuzz targets, ${FUZZ_SECONDS:-60} s each (docs/fuzzing.md)"
exec bash scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
