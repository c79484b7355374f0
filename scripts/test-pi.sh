#!/usr/bin/env bash
# The Pi stage of CI (called from scripts/test.sh): cross-builds both Pi targets without
# containers, runs aarch64 tests under qemu-user, packages both .debs and installs the arm64
# one in an emulated Debian 12 root. README "Building for the Pi" says what and why.
#
#   scripts/test-pi.sh            everything below
#   PI_STEPS="build test" scripts/test-pi.sh   only some steps: sysroot build test deb install
#   PI_TARGETS=aarch64 scripts/test-pi.sh      only the 64-bit build and package (default: aarch64 armv7)
#   PI_STEPS="sysroot test deb install" PI_TARGETS=aarch64 scripts/test-pi.sh
#            what CI runs (scripts/test.sh): one aarch64 build, the test step's, whose release
#            binaries (built for the integration tests) are also what gets packaged and booted in
#            QEMU. They are the same code as the build step's; only tokio differs, carrying the
#            two features the tests add (`test-util`, `process`). Building both would cost CI a
#            second seven-minute release build.
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
# CPU (README "Building for the Pi" says why these). Tests that need media in real time
# (media_loopback, device_call) are left out: under qemu-user x264enc took 49 ms a 640x480 frame,
# more than the 33 ms a 30 fps source allows, so they skip frames by design of the emulation.
PI_TESTS="${PI_TESTS:-token04_vectors room_login sfu_two_party_call engine_sockets media_errors devices_cli}"
# Targets built and packaged (the test and install steps are aarch64/arm64 only).
PI_TARGETS="${PI_TARGETS:-aarch64 armv7}"
times="${CARGO_TARGET_DIR:-target}/pi-times.txt"
mkdir -p "$(dirname "$times")"
: > "$times"
say() { printf '==> pi: %s\n' "$*" >&2; }
# shellcheck source=scripts/step-times.sh
source scripts/step-times.sh
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
  if [[ " $PI_TARGETS " == *" armv7 "* ]]; then
    timed "sysroot-armhf" bash scripts/sysroot.sh armhf >/dev/null
  fi
fi

if want build; then
  for short in $PI_TARGETS; do
    say "release build for $short"
    timed "build-$short-release" bash scripts/cross-build.sh "$short" >/dev/null
  done
fi

if want test; then
  say "cargo test --release --target aarch64-unknown-linux-gnu under qemu-user: --lib and $PI_TESTS"
  sysroot=$(bash scripts/sysroot.sh arm64 | tail -n1)
  args=()
  for t in $PI_TESTS; do args+=(--test "$t"); done
  retries="${CARGO_TARGET_DIR:-target}/pi-qemu-retries.txt"
  : >"$retries"
  run_tests() {
    (
      # shellcheck source=scripts/cross-env.sh
      source scripts/cross-env.sh
      roomcam_cross_env aarch64 "$sysroot"
      # Test binaries get one more run when qemu-user itself crashes (scripts/qemu-test-run.sh
      # says why); the roomcam binaries they start still run under binfmt_misc.
      export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$PWD/scripts/qemu-test-run.sh"
      export RC_QEMU_RETRY_LOG="$retries"
      cargo test --release --target "$RC_TARGET" --lib "${args[@]}"
    )
  }
  timed "test-aarch64-qemu-user" run_tests
  if [ -s "$retries" ]; then
    say "qemu-user crashed and its test binary was run again:"
    cat "$retries" >&2
  fi
fi

if want deb; then
  for short in $PI_TARGETS; do
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
