#!/usr/bin/env bash
# Runs one Pi (aarch64 or armv7) binary on this machine under qemu-user, with the Debian 12
# sysroot of scripts/sysroot.sh as the root its loader, libraries and GStreamer plugins come from.
# Cargo's runner for the cross targets (set by scripts/cross-env.sh); usable by hand too:
#   RC_SYSROOT=~/.cache/roomcam/sysroot/bookworm-arm64 scripts/qemu-run.sh \
#     target/aarch64-unknown-linux-gnu/release/roomcam --version
# Environment: RC_SYSROOT (required), RC_QEMU (default: chosen from the binary's ELF machine).
set -euo pipefail
bin="${1:?usage: qemu-run.sh BINARY [ARGS...]}"
: "${RC_SYSROOT:?RC_SYSROOT must name the sysroot (scripts/sysroot.sh prints it)}"
if [ -z "${RC_QEMU:-}" ]; then
  case "$(od -An -tx1 -j18 -N1 "$bin" | tr -d ' ')" in
    b7) RC_QEMU=qemu-aarch64-static ;;
    28) RC_QEMU=qemu-arm-static ;;
    *) echo "qemu-run: $bin is neither an aarch64 nor an arm ELF binary" >&2; exit 2 ;;
  esac
fi
case "$RC_QEMU" in
  qemu-aarch64*) gnu=aarch64-linux-gnu ;;
  *) gnu=arm-linux-gnueabihf ;;
esac
# GStreamer: only the target's plugins, registry kept apart from the host's, and the plugin scan
# in this process (a forked gst-plugin-scanner would be started without qemu).
export GST_PLUGIN_SYSTEM_PATH="$RC_SYSROOT/usr/lib/$gnu/gstreamer-1.0"
export GST_PLUGIN_PATH=""
export GST_REGISTRY_FORK=no
export GST_REGISTRY="${RC_GST_REGISTRY:-${TMPDIR:-/tmp}/roomcam-gst-registry-$gnu-$(id -u).bin}"
# QEMU_LD_PREFIX rather than -L: child processes a test starts (the roomcam binaries) run
# through binfmt_misc with the same prefix.
export QEMU_LD_PREFIX="$RC_SYSROOT"
exec "$RC_QEMU" "$@"
