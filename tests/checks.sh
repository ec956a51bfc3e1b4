# Shell helpers the script-driven suites share (packaging/test.sh, image/test.sh). Source it after
# setting $work (a scratch directory); count with check, finish with `checks_summary NAME`.
passed=0
failed=0
# check WHAT COMMAND…: runs the command; counts and prints ok/FAILED with its last output lines.
check() {
  local what=$1
  shift
  if "$@" >"$work/check.out" 2>&1; then
    passed=$((passed + 1))
    echo "ok: $what"
  else
    failed=$((failed + 1))
    echo "FAILED: $what"
    sed 's/^/    /' "$work/check.out" | tail -n 20
  fi
}
# contains TEXT NEEDLE: whether TEXT contains NEEDLE (says which is missing).
contains() { grep -q -- "$2" <<<"$1" || { echo "missing: $2"; return 1; }; }
# wait_for SECONDS COMMAND…: polls the command every 0.2 s; its last run decides.
wait_for() {
  local seconds=$1
  shift
  for _ in $(seq $((seconds * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  "$@"
}
# checks_summary NAME: prints "NAME: N passed, M failed"; fails when any check did.
checks_summary() {
  echo "$1: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
