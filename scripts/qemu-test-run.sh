#!/usr/bin/env bash
# Cargo's runner for aarch64 *test binaries* in the Pi stage (scripts/test-pi.sh): runs one
# under qemu-user (scripts/qemu-run.sh) and, when the emulator dies of a signal, once more.
#
# Why: qemu-user's emulation of many threads crashes now and then by itself ("qemu: uncaught
# target signal 6 (Aborted)" with no message from the program: no panic, no assertion). CI saw
# it once in engine_sockets; 58 local runs of that binary, up to 8 at once, never did. The same
# tests run natively on x86 earlier in CI, where a real abort of ours would show. A failed
# assertion exits with 101 and is never retried; a second death by signal fails the stage.
# Each retry is logged to stderr and appended to $RC_QEMU_RETRY_LOG (if set), which the stage
# prints at its end.
set -uo pipefail
here="$(dirname "$0")"
"$here/qemu-run.sh" "$@"
rc=$?
if [ "$rc" -le 128 ]; then exit "$rc"; fi
sig=$((rc - 128))
case "$sig" in
  4 | 6 | 7 | 11) ;; # SIGILL, SIGABRT, SIGBUS, SIGSEGV: what an emulator crash looks like
  *) exit "$rc" ;;
esac
line="qemu-test-run: $(basename "$1") died of signal $sig under qemu-user; running it once more"
echo "$line" >&2
if [ -n "${RC_QEMU_RETRY_LOG:-}" ]; then echo "$line" >>"$RC_QEMU_RETRY_LOG"; fi
exec "$here/qemu-run.sh" "$@"
