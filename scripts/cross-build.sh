#!/usr/bin/env bash
# Cross-builds roomcam and roomcam-server for a Raspberry Pi without containers: Debian's cross
# gcc links against the Debian 12 sysroot of scripts/sysroot.sh (built or reused first).
#
#   scripts/cross-build.sh aarch64|armv7 [CARGO ARGS...]
#
# Default: the release profile (what the .deb ships), both binaries, into
# target/<rust-target>/release/{roomcam,roomcam-server}. Extra arguments go to `cargo build`
# (e.g. `--profile dev`). Prints the two binaries' paths on stdout.
# Needs (scripts/setup.sh installs them): rustup targets aarch64-unknown-linux-gnu /
# armv7-unknown-linux-gnueabihf, gcc-aarch64-linux-gnu / gcc-arm-linux-gnueabihf, clang,
# mmdebstrap.
set -euo pipefail
cd "$(dirname "$0")/.."
short="${1:-}"
case "$short" in
  aarch64) arch=arm64 ;;
  armv7) arch=armhf ;;
  *) echo "usage: scripts/cross-build.sh aarch64|armv7 [CARGO ARGS...]" >&2; exit 2 ;;
esac
shift
sysroot=$(bash scripts/sysroot.sh "$arch" | tail -n1)
# shellcheck source=scripts/cross-env.sh
source scripts/cross-env.sh
roomcam_cross_env "$short" "$sysroot"

args=("$@")
profile=release
if [ "${#args[@]}" -eq 0 ]; then args=(--release); fi
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --profile) profile="${args[$((i + 1))]}" ;;
    --profile=*) profile="${args[$i]#--profile=}" ;;
  esac
done
[ "$profile" = dev ] && profile=debug

start=$(date +%s)
echo "cross-build: cargo build --target $RC_TARGET ${args[*]} (sysroot $sysroot)" >&2
cargo build --target "$RC_TARGET" --bin roomcam --bin roomcam-server "${args[@]}" >&2
echo "cross-build: $RC_TARGET built in $(( $(date +%s) - start )) s" >&2
out="${CARGO_TARGET_DIR:-target}/$RC_TARGET/$profile"
for b in roomcam roomcam-server; do
  file "$out/$b" | grep -q "ELF" || { echo "cross-build: $out/$b is not an ELF binary" >&2; exit 1; }
  echo "$out/$b"
done
