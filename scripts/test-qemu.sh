#!/usr/bin/env bash
# The QEMU system test: the aarch64 build on real Linux drivers (docs/qemu.md).
#
# Boots Debian's arm64 kernel under qemu-system-aarch64 -M virt (TCG) with a virtio GPU, runs
# the cross-built roomcam-server and two roomcam devices inside the guest on its loopback, and
# judges the result on this side: device A publishes the vivid camera (auto) and a tone played
# into snd-aloop; device B shows A on the KMS display (QMP screendumps) and plays A's tone into
# another snd-aloop substream (recorded); vivid is unplugged and comes back mid-call; the call
# button (PL061 line 3, pressed with QMP system_powerdown) ends the call.
#
# Usage: scripts/test-qemu.sh
# Environment: OUT (default artifacts/qemu: screendumps, logs, report.json),
#   ROOMCAM_QEMU_BIN (a directory holding aarch64 roomcam and roomcam-server; default: built by
#   scripts/cross-build.sh aarch64), ROOMCAM_QEMU_TIMEOUT (default 540 s for the boot and call),
#   ROOMCAM_QEMU_DISPLAY (the virtio GPU's preferred mode, default 1920x1080),
#   ROOMCAM_QEMU_B_MODE (device B's `[display] mode`, one of the GPU's modes or `auto`;
#   default 640x480: composing 1080p under TCG starves B's speaker; docs/qemu.md says more).
# Needs: qemu-system-arm, python3, and what scripts/sysroot.sh and scripts/cross-build.sh need.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-artifacts/qemu}"
TIMEOUT="${ROOMCAM_QEMU_TIMEOUT:-540}"
for tool in qemu-system-aarch64 python3; do
  command -v "$tool" >/dev/null || { echo "test-qemu: needs $tool (scripts/setup.sh installs it)" >&2; exit 2; }
done
start=$(date +%s)
export PYTHONDONTWRITEBYTECODE=1

echo "test-qemu: the judges, on pictures and sounds made for them" >&2
python3 scripts/qemu/test_judges.py

sysroot=$(bash scripts/sysroot.sh arm64 | tail -n1)
if [ -n "${ROOMCAM_QEMU_BIN:-}" ]; then
  bin_server="$ROOMCAM_QEMU_BIN/roomcam-server"; bin_device="$ROOMCAM_QEMU_BIN/roomcam"
else
  mapfile -t built < <(bash scripts/cross-build.sh aarch64 | tail -n2)
  bin_device="${built[0]}"; bin_server="${built[1]}"
fi
for b in "$bin_device" "$bin_server"; do
  [ -x "$b" ] || { echo "test-qemu: no aarch64 binary at $b" >&2; exit 2; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/roomcam-qemu-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
rm -rf "$OUT"
mkdir -p "$OUT"
g=scripts/qemu/guest
# Both are read by check.py too (B's display-mode check).
export ROOMCAM_QEMU_DISPLAY="${ROOMCAM_QEMU_DISPLAY:-1920x1080}"
export ROOMCAM_QEMU_B_MODE="${ROOMCAM_QEMU_B_MODE:-640x480}"
case "$ROOMCAM_QEMU_B_MODE" in
  auto | [0-9]*x[0-9]*) ;;
  *) echo "test-qemu: ROOMCAM_QEMU_B_MODE must be auto or WIDTHxHEIGHT, got $ROOMCAM_QEMU_B_MODE" >&2; exit 2 ;;
esac
sed "s/^mode = .*/mode = \"$ROOMCAM_QEMU_B_MODE\"/" "$g/device-b.toml" > "$work/device-b.toml"
grep -q "^mode = \"$ROOMCAM_QEMU_B_MODE\"" "$work/device-b.toml" || { echo "test-qemu: device-b.toml has no mode line" >&2; exit 2; }
read -r kernel size < <(python3 scripts/qemu/initramfs.py --sysroot "$sysroot" --out "$work/initramfs.cpio" \
  --add "$g/init:/init:755" --add "$g/scenario.sh:/roomcam/scenario.sh:755" \
  --add "$g/server.toml:/roomcam/server.toml:644" --add "$g/device-a.toml:/roomcam/device-a.toml:644" \
  --add "$work/device-b.toml:/roomcam/device-b.toml:644" \
  --add "$bin_device:/opt/roomcam/bin/roomcam:755" --add "$bin_server:/opt/roomcam/bin/roomcam-server:755")
echo "test-qemu: guest root $((size / 1048576)) MiB, kernel $kernel; prepared in $(( $(date +%s) - start )) s" >&2

rc=0
python3 scripts/qemu/host.py --kernel "$kernel" --initrd "$work/initramfs.cpio" --out "$OUT" \
  --display "$ROOMCAM_QEMU_DISPLAY" \
  --timeout "$TIMEOUT" || rc=$?
if [ "$rc" != 0 ]; then
  echo "test-qemu: the guest did not finish (see $OUT/console.log, $OUT/run.json)" >&2
fi
python3 scripts/qemu/check.py "$OUT" || rc=1
echo "test-qemu: $(( $(date +%s) - start )) s in all; artifacts in $OUT" >&2
exit "$rc"
