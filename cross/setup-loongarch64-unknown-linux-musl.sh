#!/usr/bin/env bash
# Prepares this Debian 12 machine to cross-build Jianmen for loongarch64 (Loongson 3A5000/3C5000)
# and to run the result under qemu-user. Idempotent. Needs root (apt).
#
# Debian 12 has no loongarch64 glibc and no prebuilt std for the target, so the build is static
# musl: Debian's rustc-web 1.96 compiles std from rust-web-src (the same version's sources) with
# -Zbuild-std, and zig (PyPI's ziglang, in a venv of its own, version pinned) is C compiler,
# linker and libc; LLVM 14 strips and splits its debug information (binutils 2.40 cannot). qemu-user
# 7.2 runs LoongArch code without LSX/LASX.
set -euo pipefail
VENV=${JIANMEN_CROSS_ZIG_VENV:-/var/tmp/jianmen-cross/zig-venv}
ZIG_VERSION=0.17.1

export DEBIAN_FRONTEND=noninteractive
need=()
for p in rustc-web cargo-web rust-web-src qemu-user llvm-14; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -q
  apt-get install -y -q "${need[@]}"
fi

if [ "$("$VENV/bin/python" -m ziglang version 2>/dev/null)" != "$ZIG_VERSION" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "ziglang==$ZIG_VERSION"
fi
echo "loongarch64 cross toolchain ready: rustc $(/usr/bin/rustc --version | cut -d' ' -f2), zig $("$VENV/bin/python" -m ziglang version)"
