#!/usr/bin/env bash
# cross/build.sh <target> [--release]: builds the jianmen binary for <target>; the last line
# printed is the binary's path. Run cross/setup-<target>.sh once first.
set -euo pipefail
target=${1:?usage: cross/build.sh <target> [--release]}
shift
profile=debug
args=()
for a in "$@"; do
  case "$a" in
    --release) profile=release; args+=(--release) ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
. cross/env.sh
cross_env "$target"
"$CARGO" build --locked -p jianmen --bin jianmen --target "$target" "${args[@]}" >&2
echo "$CARGO_TARGET_DIR/$target/$profile/jianmen"
