#!/usr/bin/env bash
# cross/build.sh <target> [--release] [--cpu CPU] [--glibc VERSION]: builds the jianmen binary for
# <target>; the last line printed is the binary's path. Run cross/setup-<target>.sh once first. --cpu
# tunes for one processor (e.g. tsv110 for Kunpeng 920; the binary then fails with SIGILL on others)
# and builds into its own target directory. --glibc links with zig (cargo-zigbuild, zig from the
# venv $JIANMEN_ZIG_VENV) against that glibc's symbols, also in a target directory of its own.
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
  export CARGO_TARGET_DIR=$CARGO_TARGET_DIR-$cpu
fi
build=(build)
build_target=$target
if [ -n "$glibc" ]; then
  export CARGO_TARGET_DIR=$CARGO_TARGET_DIR-glibc$glibc
  export PATH="${JIANMEN_ZIG_VENV:-/var/tmp/jianmen-zig-venv}/bin:$HOME/.cargo/bin:$PATH"
  build=(zigbuild)
  build_target=$target.$glibc
fi
# shellcheck disable=SC2086 # the target's extra cargo flags are words
"$CARGO" "${build[@]}" --locked ${JIANMEN_CROSS_CARGO_FLAGS:-} -p jianmen --bin jianmen \
  --target "$build_target" "${args[@]}" >&2
echo "$CARGO_TARGET_DIR/$target/$profile/jianmen"
