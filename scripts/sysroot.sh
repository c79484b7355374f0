#!/usr/bin/env bash
# Builds (or reuses) a Debian 12 sysroot for cross-building and emulating roomcam on a Pi.
#
#   scripts/sysroot.sh arm64|armhf      prints the sysroot's path on stdout (the last line)
#
# The sysroot is `mmdebstrap --variant=extract` output: the packages of scripts/sysroot/*.txt and
# their dependencies unpacked (not configured) for the target architecture, from this machine's
# own apt sources (its Debian 12 "bookworm" entries), without touching the host's dpkg. Lists:
#   packages-build.txt  both architectures: libc, kernel headers, GStreamer and ALSA -dev
#   packages-test.txt   arm64 only: the GStreamer plugins the tests use under qemu-user
#   packages-guest.txt  arm64 only: kernel + modules, kmod, shell, tools for a QEMU system guest
#
# Where it lands: $ROOMCAM_SYSROOT_DIR/bookworm-<arch>, default
# ${XDG_CACHE_HOME:-~/.cache}/roomcam/sysroot/bookworm-<arch> (shared by every checkout on the
# machine, so worktrees do not each hold a copy). A stamp file in it records a hash of the
# package lists, the apt sources used and the host's apt Release files: while that hash is the
# same the sysroot is reused as it is; otherwise it is rebuilt (run `apt-get update` to follow the
# mirror). A lock keeps two concurrent callers from building the same sysroot at once.
#
# Environment: ROOMCAM_SYSROOT_DIR (see above), ROOMCAM_SYSROOT_SOURCES (apt source files to use
# instead of the host's bookworm entries, space separated), ROOMCAM_SYSROOT_QUIET=1.
# Needs: mmdebstrap (Debian package), root or a working `unshare` user namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

say() { [ "${ROOMCAM_SYSROOT_QUIET:-0}" = 1 ] || printf 'sysroot: %s\n' "$*" >&2; }
die() { printf 'sysroot: %s\n' "$*" >&2; exit 2; }

arch="${1:-}"
case "$arch" in
  arm64) lists=(build test guest) ;;
  armhf) lists=(build) ;;
  *) die "usage: scripts/sysroot.sh arm64|armhf (got '${arch}')" ;;
esac
suite=bookworm
command -v mmdebstrap >/dev/null || die "needs mmdebstrap (apt-get install mmdebstrap)"

base="${ROOMCAM_SYSROOT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/roomcam/sysroot}"
dest="$base/$suite-$arch"
mkdir -p "$base"

# The packages: every non-comment word of the lists for this architecture.
pkgs=()
for l in "${lists[@]}"; do
  f="scripts/sysroot/packages-$l.txt"
  [ -f "$f" ] || die "missing $f"
  while read -r p; do pkgs+=("$p"); done < <(sed -e 's/#.*//' "$f" | tr -s ' \t' '\n' | grep -v '^$')
done

# The apt sources: the host's entries for $suite (one-line .list or deb822 .sources files),
# unless given. Other repositories (third-party, other suites) are left out.
sources=()
if [ -n "${ROOMCAM_SYSROOT_SOURCES:-}" ]; then
  read -r -a sources <<< "$ROOMCAM_SYSROOT_SOURCES"
else
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    if grep -Eq "^[^#]*(^|[[:space:]])$suite(-updates|-security)?([[:space:]]|$)" "$f"; then
      sources+=("$f")
    fi
  done
fi
[ "${#sources[@]}" -gt 0 ] || die "no apt source for $suite found in /etc/apt (set ROOMCAM_SYSROOT_SOURCES)"

# What the sysroot is made of: lists, sources, the host's view of the archive (Release files).
stamp_now() {
  {
    echo "suite=$suite arch=$arch"
    printf '%s\n' "${pkgs[@]}"
    cat "${sources[@]}"
    cat /var/lib/apt/lists/*Release 2>/dev/null | grep -E '^(Date|Suite|Codename|Version):' || true
  } | sha256sum | cut -d' ' -f1
}
want=$(stamp_now)

exec 9>"$base/.lock-$suite-$arch"
flock 9
if [ -f "$dest/.roomcam-sysroot-stamp" ] && [ "$(cat "$dest/.roomcam-sysroot-stamp")" = "$want" ]; then
  say "reusing $dest"
  echo "$dest"
  exit 0
fi

say "building $dest (${#pkgs[@]} packages and their dependencies, from ${sources[*]})"
tmp="$dest.new"
start=$(date +%s)
mode=()
if [ "$(id -u)" -ne 0 ]; then mode=(--mode=unshare); fi
# --variant=extract unpacks the packages and their dependencies without running maintainer
# scripts, so no emulation is needed to build it. The guest list's kernel and modules land in
# /boot and /usr/lib/modules like on an installed system.
quiet=()
if [ "${ROOMCAM_SYSROOT_QUIET:-0}" = 1 ]; then quiet=(--quiet); fi
run_mmdebstrap() { # SOURCE_FILES...
  rm -rf "$tmp"
  mkdir -p "$tmp"
  mmdebstrap "${mode[@]}" "${quiet[@]}" --variant=extract --architectures="$arch" \
    --aptopt='Acquire::Retries "3"' \
    --include="$(IFS=,; echo "${pkgs[*]}")" \
    --skip=check/empty \
    "$suite" "$tmp" "$@" >&2
}
if ! run_mmdebstrap "${sources[@]}"; then
  # A mirror or caching proxy caught mid-sync fails apt's index check ("File has unexpected
  # size ... Mirror sync in progress?"); it has been seen for one architecture's security
  # index only. Retry once without the -security suite: the headers, libraries and plugins
  # keep the same ABI, so the binaries built are the same ones.
  say "mmdebstrap failed; retrying once without the $suite-security suite"
  nosec=()
  for f in "${sources[@]}"; do
    c="$base/.sources-nosec-$arch-$(basename "$f")"
    case "$f" in
      *.sources) awk -v RS= -v ORS='\n\n' '!/-security/' "$f" > "$c" ;;
      *) grep -v -- '-security' "$f" > "$c" || true ;;
    esac
    nosec+=("$c")
  done
  run_mmdebstrap "${nosec[@]}"
fi

# Absolute symlinks inside the sysroot (for example libfoo.so -> /lib/...) would point into the
# host when followed from outside: make them relative so the linker and pkg-config find the
# target's files. Debian 12 packages ship the merged-/usr layout's /lib, /bin through base-files,
# which an extract sysroot does not configure: add the links the loader and linker expect.
for d in bin sbin lib; do
  if [ ! -e "$tmp/$d" ]; then ln -s "usr/$d" "$tmp/$d"; fi
done
find "$tmp" -type l -lname '/*' -print0 | while IFS= read -r -d '' link; do
  target=$(readlink "$link")
  rel=$(realpath -m --relative-to="$(dirname "$link")" "$tmp$target")
  ln -sfn "$rel" "$link"
done

rm -rf "$dest"
mv "$tmp" "$dest"
echo "$want" > "$dest/.roomcam-sysroot-stamp"
say "built $dest in $(( $(date +%s) - start )) s ($(du -sh "$dest" | cut -f1))"
echo "$dest"
