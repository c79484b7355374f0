#!/usr/bin/env bash
# SFU forwarding benchmark: 1 publisher -> N players on simulated time, SFU CPU only.
# Usage: scripts/bench-sfu.sh [N ...] [--secs S]     (default: 1 10 50 200, 10 s of media each)
# See docs/sfu.md and the SFU section of BENCHMARKS.md for the method.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(uname -srm); $(nproc) CPU(s); $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
echo "rustc: $(rustc --version)"
exec cargo bench --bench sfu_forward -- "$@"
