#!/bin/sh
# Runs the room-service benchmark (benches/rooms.rs): logins per second and room-event fan-out
# latency. Arguments go to the benchmark, e.g. `scripts/bench-rooms.sh --quick` or `--help`.
# ROOMCAM_BENCH_QUICK=1 gives a run of a few seconds.
set -eu
cd "$(dirname "$0")/.."
exec cargo bench --bench rooms -- "$@"
