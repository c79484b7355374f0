#!/usr/bin/env bash
# `cross build` through podman on a machine like the build VM: no Docker daemon, no container
# registry reachable, cgroups v1 ("hybrid"), no CAP_SYS_RESOURCE.
#
#   scripts/cross-podman.sh aarch64|armv7 [CROSS BUILD ARGS...]    (default: --release)
#
# What it works around, each found on the build VM:
#  - Cross.toml's base image `docker.io/library/debian:12` cannot be pulled: it is made from this
#    machine's own apt sources (bookworm and bookworm-updates; see below for -security) with
#    `mmdebstrap --variant=minbase bookworm` and `podman import`ed under that name (once; podman
#    then finds it locally);
#  - crun refuses hybrid cgroups ("cgroups in hybrid mode not supported"): runc, cgroupfs;
#  - podman's default rlimits are above what the VM allows ("setrlimit RLIMIT_NPROC: Operation
#    not permitted"): nofile/nproc set below the hard limits, for `podman build` and `run`;
#  - netavark is not where podman 4.3 looks: the host network is used (build and run);
#  - cross 0.2.5 misreads rustup 1.29's toolchain list and tries to reinstall `stable`: the
#    toolchain is named by version (`cross +1.95.0`).
# The containers.conf is written to target/cross-podman/ and passed as CONTAINERS_CONF only.
# Output: target/cross/<rust-target>/release/ (a target dir apart from the sysroot builds).
# Needs: podman, runc, mmdebstrap, cross (`cargo install cross`).
set -euo pipefail
cd "$(dirname "$0")/.."
short="${1:-}"
case "$short" in
  aarch64) target=aarch64-unknown-linux-gnu ;;
  armv7) target=armv7-unknown-linux-gnueabihf ;;
  *) echo "usage: scripts/cross-podman.sh aarch64|armv7 [CROSS BUILD ARGS...]" >&2; exit 2 ;;
esac
shift
args=("$@")
[ "${#args[@]}" -gt 0 ] || args=(--release)
for tool in podman runc mmdebstrap cross; do
  command -v "$tool" >/dev/null || { echo "cross-podman: needs $tool" >&2; exit 2; }
done
image=docker.io/library/debian:12
conf_dir=target/cross-podman
mkdir -p "$conf_dir"

if ! podman image exists "$image"; then
  echo "cross-podman: making $image from this machine's apt sources (mmdebstrap)" >&2
  # The machine's bookworm entries without the -security suite: the registry mirror has been
  # seen mid-sync on one architecture's security index ("File has unexpected size"), which
  # breaks the pre-build's `apt-get install` of the target's -dev packages, and nothing of
  # this image ships (the binaries link the same ABI either way; the Pi brings its own libraries).
  sources=()
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    grep -Eq '^[^#]*(^|[[:space:]])bookworm(-updates)?([[:space:]]|$)' "$f" || continue
    c="$conf_dir/nosec-$(basename "$f")"
    case "$f" in
      *.sources) awk -v RS= -v ORS='\n\n' '!/-security/' "$f" > "$c" ;;
      *) grep -v -- '-security' "$f" > "$c" || true ;;
    esac
    sources+=("$c")
  done
  mmdebstrap --quiet --variant=minbase bookworm "$conf_dir/debian12.tar" "${sources[@]}"
  podman import "$conf_dir/debian12.tar" "$image" >/dev/null
  rm -f "$conf_dir/debian12.tar"
fi

nofile=$(ulimit -Hn)
nproc=$(( $(ulimit -Hu) / 2 ))
[ "$nproc" -gt 32768 ] && nproc=32768
cat > "$conf_dir/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
netns = "host"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
helper_binaries_dir = ["/usr/lib/podman", "/usr/libexec/podman"]
EOF
ulimits="--ulimit nofile=$nofile:$nofile --ulimit nproc=$nproc:$nproc"
toolchain=$(rustc --version | awk '{print $2}')
start=$(date +%s)
CONTAINERS_CONF="$PWD/$conf_dir/containers.conf" CROSS_CONTAINER_ENGINE=podman \
  CROSS_BUILD_OPTS="$ulimits --network host" CROSS_CONTAINER_OPTS="$ulimits" \
  CARGO_TARGET_DIR="$PWD/target/cross" \
  cross "+$toolchain" build --target "$target" --bin roomcam --bin roomcam-server "${args[@]}"
echo "cross-podman: $target built in $(( $(date +%s) - start )) s into target/cross/$target" >&2
