#!/usr/bin/env bash
# benches/build-times.sh [TREE]: prints how long the shipped binary takes to build on this machine —
# a cold release build (empty target directory, dependencies included), then a warm rebuild after
# touching one source file in each of the gateway's crates (gm, scan, mta, webui), in the release
# profile (what packaging/ and the end-to-end suites build) and, with BUILD_TIMES_DEV=1, in the dev
# profile too (the edit-compile loop) — and the binary's size. Run it on an otherwise idle machine:
# the figures are wall-clock seconds. TREE defaults to this checkout; pointing it at a worktree of an
# older commit measures that commit on the same machine, for before/after comparisons.
# Its own target directory ($BUILD_TIMES_TARGET_DIR, default a fresh temporary one) is emptied first.
set -euo pipefail
tree=$(cd "${1:-$(dirname "$0")/..}" && pwd)
target_dir=${BUILD_TIMES_TARGET_DIR:-$(mktemp -d /var/tmp/jianmen-build-times.XXXXXX)}
mkdir -p "$target_dir"
export CARGO_TARGET_DIR=$target_dir CARGO_INCREMENTAL=0 CARGO_TERM_COLOR=never
cd "$tree"

# One file per crate. Before the split (issue 19) the same code lived in one crate under
# gateway/src; the files are the same modules in both layouts.
if [ -d gateway/gm ]; then
  touched=(gm=gateway/gm/src/sm3.rs scan=gateway/scan/src/html.rs
    mta=gateway/mta/src/queue/store.rs webui=webui/src/api.rs)
else
  touched=(gm=gateway/src/gm/sm3.rs scan=gateway/src/scan/html.rs
    mta=gateway/src/queue/store.rs webui=gateway/src/webui/api.rs)
fi

# Seconds since boot: a clock no time adjustment steps (one did, while a first measurement ran).
now() { cut -d' ' -f1 /proc/uptime; }
seconds() { # seconds COMMAND…: runs it quietly, prints the elapsed seconds it took
  local start end
  start=$(now)
  "$@" >"$target_dir/last.log" 2>&1 || { tail -n 30 "$target_dir/last.log" >&2; return 1; }
  end=$(now)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", b - a }'
}
build() { cargo build --locked -p jianmen --bin jianmen "$@"; }
# timed WHAT BUILD-ARGS…: one line of the report; a failed build ends the run.
timed() {
  local what=$1 took
  shift
  took=$(seconds build "$@") || exit 1
  echo "$what: $took s"
}

# warm_rebuilds PROFILE-DIR BUILD-ARGS…: touches each crate's file in turn and times the rebuild.
warm_rebuilds() {
  local dir=$1 entry before
  shift
  for entry in "${touched[@]}"; do
    before=$(stat -c %y "$target_dir/$dir/jianmen")
    touch "${entry#*=}"
    timed "warm $dir rebuild after touching ${entry%%=*} (${entry#*=})" "$@"
    # A clock stepped back makes the touched file look older than the build: no rebuild.
    [ "$(stat -c %y "$target_dir/$dir/jianmen")" != "$before" ] ||
      { echo "the binary was not rebuilt: the figure above is void" >&2; exit 1; }
  done
}

rm -rf "${target_dir:?}"/release "${target_dir:?}"/debug
echo "tree: $tree ($(git -C "$tree" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "machine: $(nproc) cores, $(rustc --version)"
timed "cold release build" --release
warm_rebuilds release --release
if [ "${BUILD_TIMES_DEV:-0}" = 1 ]; then
  timed "cold dev build"
  warm_rebuilds debug
fi
bin=$target_dir/release/jianmen
stripped=$target_dir/jianmen.stripped
strip -o "$stripped" "$bin"
echo "release binary: $(($(stat -c %s "$bin") / 1048576)) MiB, stripped $(($(stat -c %s "$stripped") / 1048576)) MiB"
