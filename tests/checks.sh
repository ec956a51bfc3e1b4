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
# The packaged binaries' loader needs: at_most_2_28 BINARY (no glibc symbol newer than Kylin V10's,
# UOS 20's and openEuler 20.03's 2.28) and is_static BINARY (no interpreter, no shared library).
glibc_needed() { readelf -W --dyn-syms "$1" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1; }
at_most_2_28() {
  readelf -h "$1" >/dev/null || return 1
  [ "$(printf '%s\n2.28\n' "$(glibc_needed "$1")" | sort -V | tail -n 1)" = 2.28 ] ||
    { echo "$1 needs GLIBC_$(glibc_needed "$1")"; return 1; }
}
is_static() {
  readelf -h "$1" >/dev/null || return 1
  ! readelf -W -l "$1" | grep -q 'Requesting program interpreter' || { echo "$1 has an interpreter"; return 1; }
  ! readelf -W -d "$1" | grep -q '(NEEDED)' || { echo "$1 needs shared libraries"; return 1; }
}
# debug_file_serves BINARY DEBUG: DEBUG (from a debug package) carries BINARY's build ID and its
# debug sections, and BINARY carries none of its own but names DEBUG (.gnu_debuglink).
build_id_of() { readelf -n "$1" | sed -n 's/^ *Build ID: *//p'; }
debug_file_serves() {
  local id
  id=$(build_id_of "$1")
  [ -n "$id" ] || { echo "$1 has no build ID"; return 1; }
  [ "$(build_id_of "$2")" = "$id" ] || { echo "$2 is not for build ID $id"; return 1; }
  readelf -W -S "$2" | grep -q ' \.debug_line ' || { echo "$2 has no .debug_line"; return 1; }
  ! readelf -W -S "$1" | grep -q ' \.debug_line ' || { echo "$1 still has debug sections"; return 1; }
  readelf -W -S "$1" | grep -q ' \.gnu_debuglink ' || { echo "$1 has no .gnu_debuglink"; return 1; }
}
