# Sourced by build.sh: the environment of one cross target ($1). Builds use
# Debian's rustc-web (never exported for native builds) and their own target directory, so
# the host build scripts compiled by the two compilers do not invalidate each other.
cross_env() {
  local target=$1
  local root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  # Set only by the targets that need them; never carried over from another target.
  unset JIANMEN_CROSS_CARGO_FLAGS JIANMEN_CROSS_STRIP JIANMEN_CROSS_OBJCOPY
  case "$target" in
    aarch64-unknown-linux-gnu)
      local sysroot=${JIANMEN_CROSS_SYSROOT:-/var/tmp/jianmen-cross/sysroot}
      export CARGO=/usr/bin/cargo RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
      export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
      export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
      export JIANMEN_CROSS_STRIP=aarch64-linux-gnu-strip JIANMEN_CROSS_OBJCOPY=aarch64-linux-gnu-objcopy
      export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="--sysroot=$sysroot"
      export RUSTDOCFLAGS="--sysroot=$sysroot"
      # The runner of .cargo/config.toml (which also names the linker), for running the
      # binary outside cargo.
      export JIANMEN_CROSS_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu max,sve=off"
      ;;
    loongarch64-unknown-linux-musl)
      # Debian 12 has neither a loongarch64 glibc nor a prebuilt std for it: a static musl build,
      # std compiled from rust-web-src by -Zbuild-std (RUSTC_BOOTSTRAP: Debian's stable rustc),
      # zig as C compiler and linker. Baseline LA464 without LSX/LASX, which qemu-user 7.2 lacks.
      local zig_venv=${JIANMEN_CROSS_ZIG_VENV:-/var/tmp/jianmen-cross/zig-venv}
      export CARGO=/usr/bin/cargo RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
      export JIANMEN_ZIG_PYTHON=$zig_venv/bin/python
      export CC_loongarch64_unknown_linux_musl=$root/cross/zig-cc
      export AR_loongarch64_unknown_linux_musl=$root/cross/zig-ar
      export CARGO_TARGET_LOONGARCH64_UNKNOWN_LINUX_MUSL_LINKER=$root/cross/zig-cc
      export CARGO_TARGET_LOONGARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C target-feature=-lsx -C link-self-contained=no"
      export JIANMEN_CROSS_CARGO_FLAGS="-Zbuild-std=std,panic_abort"
      export JIANMEN_CROSS_RUNNER="setarch -R qemu-loongarch64"
      # Debian 12's binutils do not know LoongArch; LLVM 14's objcopy handles any ELF machine.
      export JIANMEN_CROSS_STRIP=llvm-strip-14 JIANMEN_CROSS_OBJCOPY=llvm-objcopy-14
      ;;
    *)
      echo "unsupported target: $target (supported: aarch64-unknown-linux-gnu, loongarch64-unknown-linux-musl)" >&2
      return 2
      ;;
  esac
  export CARGO_TARGET_DIR=${JIANMEN_CROSS_TARGET_DIR:-$root/target/cross-${target%%-*}}
}
