#!/usr/bin/env bash
# The Pi stage of CI (called from scripts/test.sh): cross-builds both Pi targets without
# containers, runs aarch64 tests under qemu-user, packages both .debs and installs the arm64
# one in an emulated Debian 12 root. README "Building for the Pi" says what and why.
#
#   scripts/test-pi.sh            everything below
#   PI_STEPS="build test" scripts/test-pi.sh   only some steps: sysroot build test deb install
#
# Steps (each timed; the times go to target/pi-times.txt):
#   sysroot  Debian 12 sysroots for arm64 and armhf (scripts/sysroot.sh; reused while current)
#   build    release builds of roomcam + roomcam-server for aarch64 and armv7 (what the .deb
#            ships; the aarch64 ones are also what the QEMU system run of issue 10 uses)
#   test     `cargo test --release --target aarch64-unknown-linux-gnu` under qemu-user: the
#            library's unit tests and the integration tests in PI_TESTS (default below)
#   deb      target/debian/roomcam_<version>_{arm64,armhf}.deb from those release binaries
#   install  the arm64 .deb into an emulated Debian 12 root (scripts/deb-install-check.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=" ${PI_STEPS:-sysroot build test deb install} "
# Integration tests run under emulation: each stands for one part of the stack on the target
# CPU (README "Building for the Pi" says why these).
PI_TESTS="${PI_TESTS:-token04_vectors room_login sfu_two_party_call engine_sockets media_loopback device_call}"
times="${CARGO_TARGET_DIR:-target}/pi-times.txt"
mkdir -p "$(dirname "$times")"
: > "$times"
say() { printf '==> pi: %s\n' "$*" >&2; }
timed() { # NAME COMMAND...
  local name="$1" t0 t1
  shift
  t0=$(date +%s)
  "$@"
  t1=$(date +%s)
  echo "$name $((t1 - t0)) s" | tee -a "$times" >&2
}
want() { [[ "$steps" == *" $1 "* ]]; }

# qemu-user through binfmt_misc: test binaries start the roomcam binaries as child processes,
# and the .deb's maintainer scripts run emulated.
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
for a in aarch64 arm; do
  if [ ! -e "/proc/sys/fs/binfmt_misc/qemu-$a" ]; then update-binfmts --enable "qemu-$a"; fi
done

if want sysroot; then
  timed "sysroot-arm64" bash scripts/sysroot.sh arm64 >/dev/null
  timed "sysroot-armhf" bash scripts/sysroot.sh armhf >/dev/null
fi

if want build; then
  say "release builds for aarch64 and armv7"
  timed "build-aarch64-release" bash scripts/cross-build.sh aarch64 >/dev/null
  timed "build-armv7-release" bash scripts/cross-build.sh armv7 >/dev/null
fi

if want test; then
  say "cargo test --release --target aarch64-unknown-linux-gnu under qemu-user: --lib and $PI_TESTS"
  sysroot=$(bash scripts/sysroot.sh arm64 | tail -n1)
  args=()
  for t in $PI_TESTS; do args+=(--test "$t"); done
  run_tests() {
    (
      # shellcheck source=scripts/cross-env.sh
      source scripts/cross-env.sh
      roomcam_cross_env aarch64 "$sysroot"
      cargo test --release --target "$RC_TARGET" --lib "${args[@]}"
    )
  }
  timed "test-aarch64-qemu-user" run_tests
fi

if want deb; then
  for short in aarch64 armv7; do
    case "$short" in
      aarch64) t=aarch64-unknown-linux-gnu ;;
      armv7) t=armv7-unknown-linux-gnueabihf ;;
    esac
    timed "deb-$short" bash scripts/deb.sh "$short" "${CARGO_TARGET_DIR:-target}/$t/release"
  done
fi

if want install; then
  version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
  timed "install-check-arm64" bash scripts/deb-install-check.sh \
    "${CARGO_TARGET_DIR:-target}/debian/roomcam_${version}_arm64.deb"
fi
say "times:"
cat "$times" >&2
