#!/usr/bin/env bash
# Installs the arm64 (or armhf) .deb into a fresh Debian 12 root of that architecture under
# qemu-user emulation, the way a Pi user would, and checks what they get:
#
#   scripts/deb-install-check.sh target/debian/roomcam_<version>_arm64.deb
#
#  1. `mmdebstrap` (variant apt, this machine's bookworm apt sources) makes the root with systemd
#     and every package the .deb Depends on; a `gpio` group is added first, as Raspberry Pi OS
#     has one;
#  2. `dpkg -i` the .deb: maintainer scripts run emulated; dpkg refuses if a dependency is
#     missing, so the Depends line is checked too;
#  3. the `roomcam` system user exists and is in video, audio, render, input and gpio; the
#     configs are root:roomcam 0640;
#  4. `systemd-analyze verify` passes for both units inside the root (ExecStart binaries exist
#     and are executable there, unit syntax);
#  5. each unit's ExecStart runs as the unit's user in a private network namespace:
#     roomcam-server with the installed config answers GET /healthz; `roomcam devices --json`
#     (GStreamer and ALSA loaded from the installed packages) finds the x264enc encoder;
#     `roomcam check` refuses the example token with a reason.
# SUITE=trixie makes the root Debian 13 instead (apt sources: this machine's bookworm entries with
# the suite renamed), to check the package on a Debian 13 based Raspberry Pi OS.
# Needs root, mmdebstrap, qemu-user-static with binfmt_misc enabled (scripts/test-pi.sh sets it
# up), curl, unshare (util-linux). The root is made in a temporary directory and removed.
set -euo pipefail
cd "$(dirname "$0")/.."
deb="${1:?usage: scripts/deb-install-check.sh roomcam_VERSION_ARCH.deb}"
deb=$(realpath "$deb")
arch=$(dpkg-deb -f "$deb" Architecture)
fail() { echo "deb-install-check: FAIL: $*" >&2; exit 1; }
say() { echo "deb-install-check: $*" >&2; }

suite="${SUITE:-bookworm}"
work=$(mktemp -d "${TMPDIR:-/tmp}/roomcam-debcheck.XXXXXX")
root="$work/root"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  grep -Eq '^[^#]*(^|[[:space:]])bookworm(-updates|-security)?([[:space:]]|$)' "$f" || continue
  if [ "$suite" = bookworm ]; then
    sources+=("$f")
  else
    c="$work/$(basename "$f")"
    sed -E ":a; s/(^|[[:space:]])bookworm(-updates|-security)?([[:space:]]|\$)/\1$suite\2\3/; ta" "$f" > "$c"
    sources+=("$c")
  fi
done
[ "${#sources[@]}" -gt 0 ] || fail "no bookworm apt source in /etc/apt"

# Dependencies: the package names of Depends (first alternative, version constraints dropped).
deps=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/ //g' | grep -v '^$' | paste -sd, -)

start=$(date +%s)
say "making an emulated $arch Debian $suite root with systemd and $deps"
mmdebstrap --quiet --variant=apt --architectures="$arch" \
  --include="systemd,systemd-sysv,$deps" \
  --customize-hook='chroot "$1" groupadd --system gpio' \
  "$suite" "$root" "${sources[@]}" >&2
say "root made in $(( $(date +%s) - start )) s"

cp "$deb" "$root/tmp/roomcam.deb"
say "dpkg -i $(basename "$deb")"
chroot "$root" dpkg -i /tmp/roomcam.deb >&2 || fail "dpkg -i failed"
chroot "$root" dpkg-query -W -f='${Status}\n' roomcam | grep -q 'install ok installed' \
  || fail "roomcam is not installed"

groups=$(chroot "$root" id -nG roomcam) || fail "no roomcam user"
for g in roomcam video audio render input gpio; do
  [[ " $groups " == *" $g "* ]] || fail "roomcam is not in group $g (groups: $groups)"
done
say "user roomcam, groups: $groups"
for f in roomcam.toml roomcam-server.toml; do
  perm=$(chroot "$root" stat -c '%U:%G %a' "/etc/roomcam/$f")
  [ "$perm" = "root:roomcam 640" ] || fail "/etc/roomcam/$f is $perm, want root:roomcam 640"
done

for unit in roomcam.service roomcam-server.service; do
  out=$(chroot "$root" systemd-analyze verify --man=no "/lib/systemd/system/$unit" 2>&1) \
    || fail "systemd-analyze verify $unit: $out"
  if grep -F "$unit" <<<"$out"; then fail "systemd-analyze verify $unit complains: $out"; fi
  say "systemd-analyze verify $unit: ok"
done

# The units' commands, as the units run them (user roomcam, the installed config), in a network
# namespace of their own so ports cannot clash with anything on this machine.
exec_of() { sed -n 's/^ExecStart=//p' "$root/lib/systemd/system/$1"; }
server_cmd=$(exec_of roomcam-server.service)
device_cmd=$(exec_of roomcam.service)
listen=$(sed -n 's/^listen = "\(.*\)"/\1/p' "$root/etc/roomcam/roomcam-server.toml")
export root server_cmd listen
unshare --net bash -euo pipefail -c '
  ip link set lo up
  chroot "$root" runuser -u roomcam -- $server_cmd > "$root/tmp/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 120); do
    if curl -fsS "http://$listen/healthz" > "$root/tmp/healthz" 2>/dev/null; then break; fi
    kill -0 "$pid" 2>/dev/null || { cat "$root/tmp/server.log" >&2; exit 1; }
    sleep 0.5
  done
  kill -TERM "$pid"
  wait "$pid" || true
' || fail "roomcam-server did not start: $(cat "$root/tmp/server.log" 2>/dev/null)"
[ -s "$root/tmp/healthz" ] || fail "roomcam-server never answered /healthz: $(cat "$root/tmp/server.log")"
say "roomcam-server.service command ($server_cmd) answered /healthz: $(head -c 200 "$root/tmp/healthz")"

chroot "$root" runuser -u roomcam -- env GST_REGISTRY=/tmp/gst-registry.bin \
  /usr/bin/roomcam devices --json > "$work/devices.json" 2> "$work/devices.err" \
  || fail "roomcam devices failed: $(cat "$work/devices.err")"
grep -q '"x264enc"' "$work/devices.json" || fail "roomcam devices does not see x264enc: $(cat "$work/devices.json")"
say "roomcam devices --json as user roomcam: GStreamer loaded, x264enc found"
if chroot "$root" runuser -u roomcam -- ${device_cmd/--config/check --config} > "$work/check.out" 2>&1; then
  fail "roomcam check accepted the example token"
fi
grep -qi 'token' "$work/check.out" || fail "roomcam check did not name the token: $(cat "$work/check.out")"
say "roomcam check (the unit's config) refuses the example token: $(grep -i -m1 token "$work/check.out")"
say "ok: $(basename "$deb") installs and its units verify and start ($(( $(date +%s) - start )) s)"
