#!/usr/bin/env bash
# The `cross` stage of CI (called from scripts/test.sh): a real `cross build` through podman,
# the path README "Building for the Pi" gives users with containers. It builds the 32-bit Pi
# target (armv7, Raspberry Pi OS 32-bit), so CI builds, starts and packages both Pi targets:
# aarch64 comes from the container-free sysroot build of scripts/test-pi.sh.
#
#   scripts/test-cross.sh
#
# Steps (each timed into target/cross-times.txt):
#   1. `cargo install cross` (0.2.5, --locked) unless that version is installed;
#   2. scripts/cross-podman.sh armv7: the Debian 12 image of Cross.toml with its pre-build
#      packages, then `cross build --release --target armv7-unknown-linux-gnueabihf`;
#   3. both binaries are 32-bit ARM EABI5 executables and start (`--version`) inside that
#      image, which holds the armhf GStreamer and ALSA libraries they link (qemu-arm through
#      binfmt_misc; Debian's qemu-user-static registers it with the F flag, so it works in
#      containers);
#   4. the armhf .deb from those binaries (scripts/deb.sh), and its control fields.
# With ROOMCAM_CI=1 the images and the build output are removed afterwards (disk).
set -euo pipefail
cd "$(dirname "$0")/.."
CROSS_VERSION=0.2.5
target=armv7-unknown-linux-gnueabihf
out="target/cross/$target/release"
times=target/cross-times.txt
mkdir -p target
: > "$times"
say() { printf '==> cross: %s\n' "$*" >&2; }
# shellcheck source=scripts/step-times.sh
source scripts/step-times.sh

# `cross --version` exits 1 outside a cargo project even when it prints its version.
installed=$(cross --version 2>/dev/null || true)
if [[ "$installed" != "cross $CROSS_VERSION"* ]]; then
  say "installing cross $CROSS_VERSION (cargo install --locked)"
  timed "cargo-install-cross" cargo install cross --version "$CROSS_VERSION" --locked --quiet
fi

# podman must run containers here (scripts/cross-podman.sh says which workarounds that takes).
for f in /proc/sys/fs/binfmt_misc/qemu-arm; do
  if [ ! -e "$f" ]; then update-binfmts --enable qemu-arm; fi
done
grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-arm || {
  echo "cross: qemu-arm is registered without the F flag; the check in the container needs it" >&2
  exit 1
}

say "cross build --release --target $target through podman (scripts/cross-podman.sh)"
timed "cross-build-armv7-release" bash scripts/cross-podman.sh armv7 --release

say "the binaries: 32-bit ARM, and they start in the build image"
image=$(podman images --sort created --format '{{.Repository}}:{{.Tag}}' \
  | grep -F -- ":$target-" | grep -F -- "-pre-build" | head -n1 || true)
[ -n "$image" ] || { echo "cross: no pre-build image for $target in podman" >&2; exit 1; }
conf="$PWD/target/cross-podman/containers.conf"
for b in roomcam roomcam-server; do
  [ -x "$out/$b" ] || { echo "cross: $out/$b was not built" >&2; exit 1; }
  kind=$(file -b "$out/$b")
  echo "$b: $kind" >&2
  [[ "$kind" == *"ELF 32-bit LSB"*"ARM, EABI5"* ]] || {
    echo "cross: $out/$b is not a 32-bit ARM EABI5 executable" >&2
    exit 1
  }
  version=$(CONTAINERS_CONF="$conf" podman run --rm --network host \
    -v "$PWD/$out:/roomcam-bin:ro" "$image" "/roomcam-bin/$b" --version)
  echo "$b --version (armhf, emulated): $version" >&2
  [[ "$version" == "$b "* ]] || { echo "cross: $b --version printed '$version'" >&2; exit 1; }
done

say "armhf .deb from the cross-built binaries"
deb=$(bash scripts/deb.sh armv7 "$out" | tail -n1)
arch=$(dpkg-deb --field "$deb" Architecture)
[ "$arch" = armhf ] || { echo "cross: $deb has Architecture $arch" >&2; exit 1; }
contents=$(dpkg-deb --contents "$deb")
for f in usr/bin/roomcam usr/bin/roomcam-server lib/systemd/system/roomcam.service; do
  grep -q " \./$f\$" <<< "$contents" || { echo "cross: $deb lacks /$f" >&2; exit 1; }
done
ls -l "$deb" >&2
say "times:"
cat "$times" >&2

if [ "${ROOMCAM_CI:-0}" = 1 ]; then
  podman rmi --force "$image" docker.io/library/debian:12 >/dev/null 2>&1 || true
  rm -rf target/cross target/cross-podman
fi
