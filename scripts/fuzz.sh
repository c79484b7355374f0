#!/usr/bin/env bash
# Runs the cargo-fuzz targets (fuzz/), each for SECONDS, one after the other on one job.
#
#   scripts/fuzz.sh SECONDS [TARGET...]     targets: protocol token config sdp (default: all)
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`); set
# FUZZ_TOOLCHAIN to use another toolchain name than `nightly`. The working corpus of each
# target grows under fuzz/corpus/TARGET (not committed); it starts from the committed seeds in
# fuzz/seeds/TARGET. Prints the executions run per target. On a crash it stops with a non-zero
# status and prints the crash file (fuzz/artifacts/TARGET/crash-*) and the command that
# reproduces it. docs/fuzzing.md describes the targets.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

usage() {
  echo "usage: scripts/fuzz.sh SECONDS [protocol|token|config|sdp ...]" >&2
  exit 2
}
[ $# -ge 1 ] || usage
SECONDS_EACH=$1
shift
[[ "$SECONDS_EACH" =~ ^[0-9]+$ ]] && [ "$SECONDS_EACH" -gt 0 ] || usage
ALL=(protocol token config sdp)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")
for t in "${TARGETS[@]}"; do
  [[ " ${ALL[*]} " == *" $t "* ]] || { echo "unknown fuzz target $t (have: ${ALL[*]})" >&2; exit 2; }
done

TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}
# Release with debug assertions and overflow checks (as `cargo test` builds the code), no
# sanitizer: the code under test is safe Rust, so AddressSanitizer would only slow it down.
BUILD_FLAGS=(--sanitizer none --debug-assertions --fuzz-dir .)

echo "==> building fuzz targets (cargo +$TOOLCHAIN fuzz build)"
cargo "+$TOOLCHAIN" fuzz build "${BUILD_FLAGS[@]}"

declare -A EXECS
status=0
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  dict=()
  [ -f "dict/$t.dict" ] && dict=(-dict="dict/$t.dict")
  log="artifacts/$t/last-run.log"
  echo "==> fuzzing $t for ${SECONDS_EACH}s"
  set +e
  cargo "+$TOOLCHAIN" fuzz run "${BUILD_FLAGS[@]}" "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
    -max_len=16384 -timeout=20 -rss_limit_mb=2048 "${dict[@]}" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -E '^stat::number_of_executed_units:' "$log" | tail -1 | awk '{print $2}')
  EXECS[$t]=${execs:-?}
  if [ $rc -ne 0 ]; then
    status=1
    tail -n 60 "$log" >&2
    crash=$(grep -Eo 'artifacts/[^ ]*(crash|leak|timeout|oom|slow-unit)-[0-9a-f]+' "$log" | tail -1 || true)
    echo "!! $t failed (exit $rc) after ${EXECS[$t]} executions; log: fuzz/$log" >&2
    if [ -n "$crash" ]; then
      echo "!! crash file: fuzz/$crash" >&2
      echo "!! reproduce:  (cd fuzz && cargo +$TOOLCHAIN fuzz run ${BUILD_FLAGS[*]} $t $crash)" >&2
    fi
    break
  fi
  echo "    $t: ${EXECS[$t]} executions, corpus $(find "corpus/$t" -type f | wc -l) inputs"
done

echo "==> executions per target"
for t in "${TARGETS[@]}"; do
  [ -n "${EXECS[$t]:-}" ] && printf '    %-9s %s\n' "$t" "${EXECS[$t]}"
done
exit $status
