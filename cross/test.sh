#!/usr/bin/env bash
# cross/test.sh <target> [--cpu CPU] [--glibc VERSION]: tests Jianmen built for <target> under
# qemu-user, in two parts.
#  1. The gateway crates' own tests (jianmen-gm, -scan, -mta, -webui and the binary: unit,
#     integration, doctests; among them the model parity test) compiled for <target> and run by
#     the target's QEMU runner.
#  2. The end-to-end suites of tests/ — built natively, as they drive real x86_64 peers
#     (smtp-sink, swaks, dnsmasq, clamd, Tongsuo) — against the <target> `jianmen` binary run
#     under QEMU through $JIANMEN_BIN.
# Release builds throughout: debug code under QEMU is too slow for the crypto tests.
# With --cpu, the build tuned for that processor (cross/build.sh --cpu) goes through part 2 only:
# its part 1 would compile every test again for one CPU. For loongarch64 `--cpu la464` is the
# LSX/LASX build, run by qemu-user 10 (cross/setup-qemu-user-10.sh), as 7.2 has neither.
# With --glibc, part 2 runs the binary the packages ship (cross/build.sh --glibc, zig from
# packaging/build.sh's venv): CI then builds the release binary once for both this and
# packaging/test-arch.sh instead of twice.
# Run cross/setup-<target>.sh once first. Extra arguments go to both `cargo test` runs
# (e.g. a test name filter).
set -euo pipefail
target=${1:?usage: cross/test.sh <target> [--cpu CPU] [cargo test args...]}
shift
cpu=""
glibc=""
while [ "${1:-}" = --cpu ] || [ "${1:-}" = --glibc ]; do
  case "$1" in
    --cpu) cpu=${2:?--cpu needs a CPU} ;;
    --glibc) glibc=${2:?--glibc needs a version} ;;
  esac
  shift 2
done
cd "$(dirname "$0")/.."

# The suites of tests/ that need nothing QEMU cannot give. Left out: console_browser (headless
# Chromium against a console that renders every page under emulation: minutes per page load,
# and the console code is target-independent Rust already covered by part 1's console_api) and
# privilege (it checks every thread of the process is no longer root, and qemu-user's own RCU
# thread, not the gateway's, stays root; every gateway thread does switch under QEMU too).
E2E_SUITES=(smtp_dialogue queue quarantine scan mx audit gm_tls retrain)

if [ -z "$cpu" ]; then
  echo "== $target: gateway tests under QEMU"
  (
    . cross/env.sh
    cross_env "$target"
    # shellcheck disable=SC2086 # the target's extra cargo flags are words
    "$CARGO" test --release --locked ${JIANMEN_CROSS_CARGO_FLAGS:-} -p jianmen-gm -p jianmen-scan \
      -p jianmen-mta -p jianmen-webui -p jianmen --target "$target" "$@"
  )
fi

echo "== $target${cpu:+ (-C target-cpu=$cpu)}: end-to-end suites against the $target binary"
bin=$(cross/build.sh "$target" --release ${cpu:+--cpu "$cpu"} ${glibc:+--glibc "$glibc"} | tail -n 1)
runner=$(. cross/env.sh && cross_env "$target" && echo "$JIANMEN_CROSS_RUNNER")
if [ -n "$cpu" ] && [ "$target" = loongarch64-unknown-linux-musl ]; then
  runner="setarch -R $(cross/setup-qemu-user-10.sh | tail -n 1)/qemu-loongarch64 -cpu $cpu"
fi
wrap_dir=$(mktemp -d)
trap 'rm -rf "$wrap_dir"' EXIT
# exec keeps the process id, so the suites' signals (SIGHUP reload, SIGTERM, kill -9) reach the
# emulated gateway itself.
printf '#!/bin/sh\nexec %s %q "$@"\n' "$runner" "$bin" > "$wrap_dir/jianmen"
chmod +x "$wrap_dir/jianmen"
suites=()
for s in "${E2E_SUITES[@]}"; do suites+=(--test "$s"); done
# --workspace, not -p jianmen-testkit: with the workspace's unified features this reuses the
# native test build instead of compiling the dependencies again.
JIANMEN_BIN="$wrap_dir/jianmen" cargo test --locked --workspace "${suites[@]}" "$@"
