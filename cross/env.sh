# Sourced by build.sh: the environment of one cross target ($1). Builds use
# Debian's rustc-web (never exported for native builds) and their own target directory, so
# the host build scripts compiled by the two compilers do not invalidate each other.
cross_env() {
  local target=$1
  local root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  case "$target" in
    aarch64-unknown-linux-gnu)
      local sysroot=${JIANMEN_CROSS_SYSROOT:-/var/tmp/jianmen-cross/sysroot}
      export CARGO=/usr/bin/cargo RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
      export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
      export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
      export JIANMEN_CROSS_STRIP=aarch64-linux-gnu-strip
      export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="--sysroot=$sysroot"
      export RUSTDOCFLAGS="--sysroot=$sysroot"
      # The runner of .cargo/config.toml (which also names the linker), for running the
      # binary outside cargo.
      export JIANMEN_CROSS_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu max,sve=off"
      ;;
    *)
      echo "unsupported target: $target (supported: aarch64-unknown-linux-gnu)" >&2
      return 2
      ;;
  esac
  export CARGO_TARGET_DIR=${JIANMEN_CROSS_TARGET_DIR:-$root/target/cross-${target%%-*}}
}
