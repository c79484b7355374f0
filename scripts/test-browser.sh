#!/usr/bin/env bash
# Runs the browser tests (tests/browser): builds roomcam-server and the roomcam device, then node's test runner drives
# headless Debian Chromium (playwright-core) against servers the tests start on loopback ports.
# Needs scripts/setup-browser.sh to have run. Artifacts (screenshots, logs) go to artifacts/.
# Usage: scripts/test-browser.sh [test files...]      (ROOMCAM_LOG=debug for verbose server logs)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ] || [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "browser test prerequisites missing: run scripts/setup-browser.sh" >&2
  exit 1
fi

echo "==> cargo build --bin roomcam-server --bin roomcam"
cargo build --bin roomcam-server --bin roomcam

mkdir -p artifacts/logs
cd tests/browser
if [ "$#" -gt 0 ]; then
  files=("$@")
else
  files=(./*.test.mjs)
fi
echo "==> node --test ${files[*]}"
# One file at a time: each starts its own server and browsers, and the machine has 2 cores.
exec node --test --test-concurrency=1 --test-timeout=240000 "${files[@]}"
