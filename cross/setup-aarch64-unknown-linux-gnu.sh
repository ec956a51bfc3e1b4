#!/usr/bin/env bash
# Prepares this Debian 12 machine to cross-build Jianmen for aarch64 (Kunpeng, Phytium) and to
# run the result under qemu-user. Idempotent. Needs root (apt).
#
# rustup cannot add targets offline, so the compiler is Debian's rustc-web 1.96 (/usr/bin/rustc,
# beside rustup's 1.95, which stays first in PATH) and the aarch64 standard library is unpacked
# from Debian's libstd-rust-web-dev:arm64 into a private sysroot — the arm64 architecture is
# added only for that download and removed again, so no multiarch packages stay behind.
set -euo pipefail
SYSROOT=${JIANMEN_CROSS_SYSROOT:-/var/tmp/jianmen-cross/sysroot}
TARGET=aarch64-unknown-linux-gnu

export DEBIAN_FRONTEND=noninteractive
need=()
for p in rustc-web cargo-web libstd-rust-web-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -q
  apt-get install -y -q "${need[@]}"
fi

if [ ! -d "$SYSROOT/lib/rustlib/$TARGET/lib" ]; then
  work=$(mktemp -d)
  chmod 755 "$work"
  dpkg --add-architecture arm64
  trap 'dpkg --remove-architecture arm64 2>/dev/null || true; apt-get update -q >/dev/null 2>&1 || true' EXIT
  apt-get update -q >/dev/null
  (cd "$work" && apt-get download -q "libstd-rust-web-dev:arm64")
  dpkg-deb -x "$work"/libstd-rust-web-dev_*_arm64.deb "$work/x"
  mkdir -p "$SYSROOT/lib/rustlib"
  rm -rf "$SYSROOT/lib/rustlib/$TARGET"
  cp -a "$work/x/usr/lib/rustlib/$TARGET" "$SYSROOT/lib/rustlib/$TARGET"
  ln -sfn /usr/lib/rustlib/x86_64-unknown-linux-gnu "$SYSROOT/lib/rustlib/x86_64-unknown-linux-gnu"
  rm -rf "$work"
fi
echo "aarch64 cross toolchain ready: rustc $(/usr/bin/rustc --version | cut -d' ' -f2), sysroot $SYSROOT"
