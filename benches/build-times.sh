#!/usr/bin/env bash
# benches/build-times.sh [TREE]: prints how long the shipped binary takes to build on this machine —
# a cold release build (empty target directory, dependencies included), then a warm rebuild after
# touching one source file in each of the gateway's crates (gm, scan, mta, webui), in the release
# profile (what packaging/ and the end-to-end suites build) and in the dev profile (the edit-compile
# loop) — and the binary's size. TREE defaults to this checkout; pointing it at a worktree of an
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

seconds() { # seconds COMMAND…: runs it quietly, prints the wall-clock seconds it took
  local start end
  start=$(date +%s)
  "$@" >"$target_dir/last.log" 2>&1 || { tail -n 30 "$target_dir/last.log" >&2; return 1; }
  end=$(date +%s)
  echo $((end - start))
}
build() { cargo build --locked -p jianmen --bin jianmen "$@"; }
# timed WHAT BUILD-ARGS…: one line of the report; a failed build ends the run.
timed() {
  local what=$1 took
  shift
  took=$(seconds build "$@") || exit 1
  echo "$what: $took s"
}

rm -rf "${target_dir:?}"/release "${target_dir:?}"/debug
echo "tree: $tree ($(git -C "$tree" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "machine: $(nproc) cores, $(rustc --version)"
timed "cold release build" --release
for entry in "${touched[@]}"; do
  touch "${entry#*=}"
  timed "warm release rebuild after touching ${entry%%=*} (${entry#*=})" --release
done
timed "cold dev build"
for entry in "${touched[@]}"; do
  touch "${entry#*=}"
  timed "warm dev rebuild after touching ${entry%%=*} (${entry#*=})"
done
bin=$target_dir/release/jianmen
stripped=$target_dir/jianmen.stripped
strip -o "$stripped" "$bin"
echo "release binary: $(($(stat -c %s "$bin") / 1048576)) MiB, stripped $(($(stat -c %s "$stripped") / 1048576)) MiB"
