# shellcheck shell=bash
# Sourced by the cross-build scripts: `source scripts/cross-env.sh; roomcam_cross_env aarch64|armv7 SYSROOT`.
# Sets the Rust target, Debian's cross gcc as linker and C compiler, pkg-config and bindgen
# pointed into the Debian 12 sysroot of scripts/sysroot.sh, and (aarch64) qemu-user as the
# runner of test binaries. Only target-specific variables are set, so host build scripts and
# proc macros still build for the host. Exports: RC_TARGET RC_DEB_ARCH RC_GNU RC_SYSROOT RC_QEMU RC_REPO.
roomcam_cross_env() {
  local short="$1" sysroot="$2"
  case "$short" in
    aarch64) RC_TARGET=aarch64-unknown-linux-gnu; RC_GNU=aarch64-linux-gnu; RC_DEB_ARCH=arm64; RC_QEMU=qemu-aarch64-static ;;
    armv7) RC_TARGET=armv7-unknown-linux-gnueabihf; RC_GNU=arm-linux-gnueabihf; RC_DEB_ARCH=armhf; RC_QEMU=qemu-arm-static ;;
    *) echo "cross-env: unknown target '$short' (aarch64 or armv7)" >&2; return 2 ;;
  esac
  RC_SYSROOT="$sysroot"
  RC_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  export RC_REPO RC_TARGET RC_GNU RC_DEB_ARCH RC_SYSROOT RC_QEMU
  local t="${RC_TARGET//-/_}" T
  T=$(echo "$t" | tr '[:lower:]' '[:upper:]')
  # Linking: Debian's cross gcc, looking for libraries in the sysroot only.
  export "CARGO_TARGET_${T}_LINKER=${RC_GNU}-gcc"
  export "CARGO_TARGET_${T}_RUSTFLAGS=-C link-arg=--sysroot=${sysroot}"
  # C code built by build scripts (aws-lc-sys, alsa-sys glue): same compiler, same sysroot.
  export "CC_${t}=${RC_GNU}-gcc"
  export "CXX_${t}=${RC_GNU}-g++"
  export "AR_${t}=${RC_GNU}-ar"
  export "CFLAGS_${t}=--sysroot=${sysroot}"
  # pkg-config: the target's .pc files, their paths prefixed with the sysroot.
  export "PKG_CONFIG_SYSROOT_DIR_${t}=${sysroot}"
  export "PKG_CONFIG_LIBDIR_${t}=${sysroot}/usr/lib/${RC_GNU}/pkgconfig:${sysroot}/usr/share/pkgconfig"
  export "PKG_CONFIG_PATH_${t}="
  export "PKG_CONFIG_ALLOW_CROSS_${t}=1"
  # bindgen (v4l2-sys-mit): clang for the target, reading the sysroot's kernel and libc headers.
  export "BINDGEN_EXTRA_CLANG_ARGS_${t}=--sysroot=${sysroot}"
  # Test binaries (cargo test/run) run under qemu-user through scripts/qemu-run.sh, which
  # points the loader and GStreamer into the sysroot.
  export "CARGO_TARGET_${T}_RUNNER=${RC_REPO}/scripts/qemu-run.sh"
}
