#!/usr/bin/env bash
# Builds the Debian package a Pi user installs with `sudo apt install ./roomcam_*.deb`.
#
#   scripts/deb.sh aarch64|armv7 [BINARY_DIR]
#
# BINARY_DIR holds roomcam and roomcam-server built for that target (default: built now by
# scripts/cross-build.sh, release profile, in target/<rust-target>/release). The binaries are
# stripped with the target's binutils. Output: target/debian/roomcam_<version>_<arch>.deb, its
# path printed on stdout. Plain dpkg-deb (no debhelper, no cargo-deb to install).
#
# What is in it:
#   /usr/bin/roomcam, /usr/bin/roomcam-server
#   /lib/systemd/system/roomcam.service, roomcam-server.service  (not enabled on install: the
#     config needs a real token or secret first)
#   /etc/roomcam/roomcam.toml, roomcam-server.toml               conffiles: the example configs
#   /usr/share/doc/roomcam/                                     README, examples, copyright
#   maintainer scripts (packaging/debian/): a `roomcam` system user in the groups video, audio,
#     render, input and gpio (those that exist), configs readable by root and group roomcam only.
# Depends: the GStreamer and ALSA runtime libraries it links and the plugins its pipelines use.
set -euo pipefail
cd "$(dirname "$0")/.."
short="${1:-}"
case "$short" in
  aarch64) target=aarch64-unknown-linux-gnu; arch=arm64; gnu=aarch64-linux-gnu ;;
  armv7) target=armv7-unknown-linux-gnueabihf; arch=armhf; gnu=arm-linux-gnueabihf ;;
  *) echo "usage: scripts/deb.sh aarch64|armv7 [BINARY_DIR]" >&2; exit 2 ;;
esac
bindir="${2:-}"
if [ -z "$bindir" ]; then
  bindir=$(dirname "$(bash scripts/cross-build.sh "$short" | tail -n1)")
fi
for b in roomcam roomcam-server; do
  [ -x "$bindir/$b" ] || { echo "deb: no $bindir/$b" >&2; exit 1; }
done

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
out="${CARGO_TARGET_DIR:-target}/debian"
root="$out/roomcam_${version}_$arch"
rm -rf "$root"
mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/roomcam" \
  "$root/usr/share/doc/roomcam/examples"

for b in roomcam roomcam-server; do
  install -m 0755 "$bindir/$b" "$root/usr/bin/$b"
  "$gnu-strip" --strip-all "$root/usr/bin/$b"
done
install -m 0644 systemd/roomcam.service systemd/roomcam-server.service "$root/lib/systemd/system/"
install -m 0644 config/roomcam.example.toml "$root/etc/roomcam/roomcam.toml"
install -m 0644 config/roomcam-server.example.toml "$root/etc/roomcam/roomcam-server.toml"
install -m 0644 config/roomcam.example.toml config/roomcam-server.example.toml \
  "$root/usr/share/doc/roomcam/examples/"
install -m 0644 README.md "$root/usr/share/doc/roomcam/README.md"
cat > "$root/usr/share/doc/roomcam/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: roomcam

Files: *
License: MIT or Apache-2.0
EOF

for s in postinst postrm; do
  install -m 0755 "packaging/debian/$s" "$root/DEBIAN/$s"
done
(cd "$root" && find etc -type f | sed 's|^|/|' | sort) > "$root/DEBIAN/conffiles"

# Runtime dependencies: the shared libraries the binaries link (Debian 12 names; the minimum
# versions are the 1.22 API the crate is built for) and the plugins the pipelines create:
# videotestsrc/videoconvert/appsrc (base), v4l2 and rtp elements (good), kmssink, v4l2codecs
# and opus parsing (bad), x264enc (ugly: the software encoder, the only one on a Pi 5), avdec_h264
# (libav: software H.264 decoding), alsasrc/alsasink (alsa).
depends="libc6 (>= 2.36), libgcc-s1, libgstreamer1.0-0 (>= 1.22), libgstreamer-plugins-base1.0-0 (>= 1.22), libasound2 (>= 1.2), gstreamer1.0-plugins-base (>= 1.22), gstreamer1.0-plugins-good, gstreamer1.0-plugins-bad, gstreamer1.0-plugins-ugly, gstreamer1.0-libav, gstreamer1.0-alsa, adduser"
recommends="v4l-utils, alsa-utils"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: roomcam
Version: $version
Architecture: $arch
Maintainer: roomcam maintainers <roomcam@localhost>
Installed-Size: $size
Depends: $depends
Recommends: $recommends
Section: video
Priority: optional
Homepage: file:///usr/share/doc/roomcam/README.md
Description: video-call appliance for Raspberry Pi-class boards, and its room service
 roomcam turns a Pi with a camera, a microphone and a screen into a video-call
 appliance (systemd unit roomcam.service); roomcam-server is the self-hostable
 room service (signalling and SFU, roomcam-server.service) it calls through.
 Edit /etc/roomcam/roomcam.toml (or roomcam-server.toml), check it with
 "roomcam check", then "systemctl enable --now roomcam".
EOF

deb="$out/roomcam_${version}_$arch.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
echo "$deb"
