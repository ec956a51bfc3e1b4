#!/usr/bin/env bash
# cross/build.sh <target> [--release] [--cpu CPU] [--glibc VERSION]: builds the jianmen binary for
# <target>; the last line printed is the binary's path. Run cross/setup-<target>.sh once first.
# --cpu tunes for one processor (tsv110 for Kunpeng 920: the binary then fails with SIGILL on
# others; la464 for Loongson 3A5000/3C5000 with LSX and LASX) and builds into its own target
# directory. --glibc links with zig (cargo-zigbuild, zig from the venv $JIANMEN_ZIG_VENV) against
# that glibc's symbols, also in a target directory of its own.
set -euo pipefail
target=${1:?usage: cross/build.sh <target> [--release] [--cpu CPU]}
shift
profile=debug
args=()
cpu=""
glibc=""
while [ $# -gt 0 ]; do
  case "$1" in
    --release) profile=release; args+=(--release); shift ;;
    --cpu) cpu=$2; shift 2 ;;
    --glibc) glibc=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
. cross/env.sh
cross_env "$target"
if [ -n "$cpu" ]; then
  flags_var=CARGO_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_RUSTFLAGS
  export "$flags_var=${!flags_var:-} -C target-cpu=$cpu"
  if [ "$target" = loongarch64-unknown-linux-musl ]; then
    # The baseline's -lsx gives way to the CPU's vector units, in Rust and in zig's C alike.
    export "$flags_var=${!flags_var} -C target-feature=+lsx,+lasx" JIANMEN_ZIG_MCPU=$cpu
  fi
  export CARGO_TARGET_DIR=$CARGO_TARGET_DIR-$cpu
fi
build=("$CARGO" rustc)
build_target=$target
if [ -n "$glibc" ]; then
  export CARGO_TARGET_DIR=$CARGO_TARGET_DIR-glibc$glibc
  export PATH="${JIANMEN_ZIG_VENV:-/var/tmp/jianmen-zig-venv}/bin:$HOME/.cargo/bin:$PATH"
  # It runs $CARGO for the build.
  build=(cargo-zigbuild rustc)
  build_target=$target.$glibc
fi
# A build ID names the binary to its debug package (zig's linker adds none by itself); passed to
# the binary's link alone, so the dependencies' build stays shared with `cargo test`.
# shellcheck disable=SC2086 # the target's extra cargo flags are words
"${build[@]}" --locked ${JIANMEN_CROSS_CARGO_FLAGS:-} -p jianmen --bin jianmen \
  --target "$build_target" "${args[@]}" -- -C link-arg=-Wl,--build-id=sha1 >&2
echo "$CARGO_TARGET_DIR/$target/$profile/jianmen"
