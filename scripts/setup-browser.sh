#!/usr/bin/env bash
# Installs what the browser tests need: Debian's Chromium (driven headless by playwright-core,
# which downloads no browser of its own) and the npm packages pinned in tests/browser's lockfile.
# Idempotent: an installed chromium is skipped, and `npm ci` is skipped when node_modules matches
# the lockfile. Uses the machine's own apt sources and npm registry settings.
# Usage: scripts/setup-browser.sh
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if [ ! -x /usr/bin/chromium ]; then
  say "installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
else
  say "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo '?')"
fi

if ! command -v npm >/dev/null 2>&1; then
  say "npm not found: install Node.js 18 or newer (Debian: apt-get install nodejs npm) and run this again"
  exit 1
fi

cd tests/browser
# npm ci wipes and reinstalls; skip it when the installed tree already matches the lockfile.
if [ -f node_modules/.package-lock.json ] && cmp -s package-lock.json node_modules/.roomcam-lock; then
  say "tests/browser node_modules up to date"
else
  say "npm ci in tests/browser"
  # playwright-core never downloads browsers; this variable only makes that explicit.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
  cp package-lock.json node_modules/.roomcam-lock
fi
say "browser test setup done"
