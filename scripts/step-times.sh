#!/usr/bin/env bash
# Sourced by the stage scripts (scripts/test-pi.sh, scripts/test-cross.sh): `timed NAME CMD...`
# runs CMD and appends "NAME <seconds> s" to the file named by $times (and to stderr).
timed() { # NAME COMMAND...
  local name="$1" t0 t1
  shift
  t0=$(date +%s)
  "$@"
  t1=$(date +%s)
  echo "$name $((t1 - t0)) s" | tee -a "$times" >&2
}
