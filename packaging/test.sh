#!/usr/bin/env bash
# packaging/test.sh: makes the .deb and .rpm with packaging/build.sh (dev profile, two versions)
# and tests them on this machine, as root:
#  - the .deb's files, conffile and scripts; the .rpm's files, config files, scripts and
#    requirements (`rpm -qp…`) and its installation into an `rpm --root` tree;
#  - the unit's `systemd-analyze security` exposure (at most 2.0);
#  - `dpkg -i`, then the gateway started the way systemd starts the unit (its ExecStartPre and
#    ExecStart, as user jianmen with CAP_NET_BIND_SERVICE alone, no-new-privs, umask 077) on a
#    privileged port: it passes mail, its console answers, /proc shows the privileges;
#  - mail queued during a downstream outage survives an upgrade to the next version and is
#    delivered after it; the edited configuration survives too;
#  - `dpkg -r` keeps configuration and mail, `dpkg -P` removes the configuration only.
# Leaves the machine as it found it. Prints "packaging: N passed, M failed" last.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "packaging/test.sh needs root (dpkg -i, setpriv)" >&2; exit 2; }
export PATH="$PATH:/usr/sbin:/sbin"

MARK=/var/lib/jianmen/.packaging-test
SMTP_PORT=925
CONSOLE_PORT=944
version=$(cargo metadata --format-version 1 --no-deps --locked | python3 -c \
  'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="jianmen"))')

# A machine with a real Jianmen installation is not ours to test on; leftovers of an interrupted
# run of this script are.
if dpkg -s jianmen >/dev/null 2>&1 && ! dpkg -s jianmen | grep -q '^Version: .*~pkgtest'; then
  echo "packaging/test.sh: a jianmen package is installed here; refusing to replace it" >&2
  exit 2
fi
if [ -e /var/lib/jianmen ] && [ ! -e "$MARK" ] && ! dpkg -s jianmen >/dev/null 2>&1; then
  echo "packaging/test.sh: /var/lib/jianmen exists and is not this test's; refusing" >&2
  exit 2
fi

work=$(mktemp -d)
chmod 755 "$work"
gateway_pid=""
sink_pid=""
cleanup() {
  [ -n "$gateway_pid" ] && kill "$gateway_pid" 2>/dev/null || true
  [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  if dpkg -s jianmen-dbgsym >/dev/null 2>&1; then dpkg -P jianmen-dbgsym >/dev/null 2>&1 || true; fi
  if dpkg -s jianmen >/dev/null 2>&1; then dpkg -P jianmen >/dev/null 2>&1 || true; fi
  rm -rf /var/lib/jianmen /var/spool/jianmen /var/log/jianmen /etc/jianmen "$work"
}
cleanup_leftovers() {
  if dpkg -s jianmen-dbgsym >/dev/null 2>&1; then dpkg -P jianmen-dbgsym >/dev/null; fi
  if dpkg -s jianmen >/dev/null 2>&1; then dpkg -P jianmen >/dev/null; fi
  if [ -e "$MARK" ]; then rm -rf /var/lib/jianmen /var/spool/jianmen /var/log/jianmen /etc/jianmen; fi
}
cleanup_leftovers
trap cleanup EXIT

. tests/checks.sh
mode_owner() { [ "$(stat -c '%a %U:%G' "$1")" = "$2" ] || { stat -c '%n: %a %U:%G, expected '"$2" "$1"; return 1; }; }

echo "== building the packages (dev profile, versions ${version}~pkgtest1 and ${version}~pkgtest2)"
# The first with a maintainer of its own, as a release build would name the shipping organisation.
maintainer="Package Test <pkgtest@localhost>"
mapfile -t v1 < <(JIANMEN_MAINTAINER="$maintainer" packaging/build.sh --profile dev \
  --version "${version}~pkgtest1" --out "$work/v1" | tail -n 4)
mapfile -t v2 < <(packaging/build.sh --profile dev --version "${version}~pkgtest2" --out "$work/v2" | tail -n 2)
dbgsym1=${v1[0]}
debuginfo1=${v1[1]}
deb1=${v1[2]}
rpm1=${v1[3]}
deb2=${v2[0]}
printf '%s\n' "${v1[@]}"

echo "== the .deb"
deb_files=$(dpkg-deb -c "$deb1")
deb_file_list() {
  for f in ./usr/bin/jianmen ./usr/lib/jianmen/setup ./etc/jianmen/jianmen.toml \
    ./lib/systemd/system/jianmen.service ./usr/lib/sysusers.d/jianmen.conf \
    ./usr/lib/tmpfiles.d/jianmen.conf ./usr/share/man/man1/jianmen.1 \
    ./usr/share/man/man1/jianmen-serve.1 ./usr/share/bash-completion/completions/jianmen \
    ./usr/share/zsh/vendor-completions/_jianmen ./usr/share/fish/vendor_completions.d/jianmen.fish \
    ./usr/share/doc/jianmen/copyright ./usr/share/doc/jianmen/third-party-licenses.txt; do
    contains "$deb_files" " $f" || return 1
  done
}
check "deb holds binary, config, unit, sysusers, tmpfiles, man pages, completions, licences" deb_file_list
check "deb: /etc/jianmen/jianmen.toml is a conffile" \
  bash -c "dpkg-deb -I '$deb1' conffiles | grep -qx /etc/jianmen/jianmen.toml"
check "deb: Maintainer is JIANMEN_MAINTAINER; without it no invented address" \
  bash -c "[ \"\$(dpkg-deb -f '$deb1' Maintainer)\" = '$maintainer' ] && ! dpkg-deb -f '$deb2' Maintainer | grep -q @"
# The binary inside each package, as the target systems will load it.
dpkg-deb -x "$deb1" "$work/deb-files"
check "deb: the binary needs glibc 2.28 at most (Kylin V10, UOS 20, openEuler 20.03)" at_most_2_28 "$work/deb-files/usr/bin/jianmen"
dbgsym_fields() {
  local v
  v=$(dpkg-deb -f "$deb1" Version)
  [ "$(dpkg-deb -f "$dbgsym1" Package Version Maintainer Depends Section)" = "$(printf \
    'Package: jianmen-dbgsym\nVersion: %s\nMaintainer: %s\nDepends: jianmen (= %s)\nSection: debug' \
    "$v" "$maintainer" "$v")" ] || { dpkg-deb -f "$dbgsym1"; return 1; }
}
check "dbgsym: jianmen-dbgsym, the same version and maintainer, depends on exactly that jianmen" dbgsym_fields
dpkg-deb -x "$dbgsym1" "$work/deb-files"
debug_file() { echo "$1/usr/lib/debug/.build-id/$(build_id_of "$1/usr/bin/jianmen" | sed 's/^../&\//').debug"; }
check "dbgsym: the binary's debug information, under its build ID; the binary keeps none" \
  debug_file_serves "$work/deb-files/usr/bin/jianmen" "$(debug_file "$work/deb-files")"
check "deb: postinst and prerm call the shared setup script" \
  bash -c "dpkg-deb -I '$deb1' postinst | grep -q 'jianmen/setup install' && dpkg-deb -I '$deb1' prerm | grep -q 'jianmen/setup remove'"

echo "== the .rpm"
rpm_files=$(rpm -qpl "$rpm1" 2>/dev/null)
rpm_file_list() {
  for f in /usr/bin/jianmen /usr/lib/jianmen/setup /etc/jianmen/jianmen.toml \
    /usr/lib/systemd/system/jianmen.service /usr/lib/sysusers.d/jianmen.conf \
    /usr/lib/tmpfiles.d/jianmen.conf /usr/share/man/man1/jianmen.1 \
    /usr/share/licenses/jianmen/copyright /usr/share/licenses/jianmen/third-party-licenses.txt \
    /usr/share/bash-completion/completions/jianmen; do
    contains "$rpm_files" "$f" || return 1
  done
}
check "rpm -qpl: binary, config, unit, sysusers, tmpfiles, man page, completion, licences" rpm_file_list
check "rpm: Vendor is JIANMEN_MAINTAINER (cargo-generate-rpm sets no Packager)" \
  bash -c "[ \"\$(rpm -qp --qf '%{VENDOR}' '$rpm1' 2>/dev/null)\" = '$maintainer' ]"
# Debian's rpm2cpio exits 1 after writing a whole zstd payload; what cpio extracts is checked.
mkdir -p "$work/rpm-files"
for p in "$rpm1" "$debuginfo1"; do { rpm2cpio "$p" || true; } | (cd "$work/rpm-files" && cpio -idm --quiet); done
check "rpm: the binary needs glibc 2.28 at most" at_most_2_28 "$work/rpm-files/usr/bin/jianmen"
check "debuginfo: jianmen-debuginfo requires exactly this jianmen" bash -c \
  "rpm -qp --requires '$debuginfo1' 2>/dev/null | grep -qx \"jianmen = \$(rpm -qp --qf '%{VERSION}-%{RELEASE}' '$rpm1' 2>/dev/null)\""
check "debuginfo: the binary's debug information, under its build ID" \
  debug_file_serves "$work/rpm-files/usr/bin/jianmen" "$(debug_file "$work/rpm-files")"
check "rpm -qpc: /etc/jianmen/jianmen.toml is a config file" \
  bash -c "rpm -qpc '$rpm1' 2>/dev/null | grep -qx /etc/jianmen/jianmen.toml"
check "rpm -qp --scripts: install on 1, upgrade on 2, remove on erase" \
  bash -c "s=\$(rpm -qp --scripts '$rpm1' 2>/dev/null); grep -q 'setup install' <<<\"\$s\" && grep -q 'setup upgrade' <<<\"\$s\" && grep -q 'setup remove' <<<\"\$s\""
check "rpm -qp --requires: useradd" bash -c "rpm -qp --requires '$rpm1' 2>/dev/null | grep -q /usr/sbin/useradd"
rpm_root_install() {
  local root=$work/rpmroot
  mkdir -p "$root"
  rpm --root "$root" --initdb
  # --noscripts: the tree has no shell or useradd to run them with.
  rpm --root "$root" -i --nodeps --noscripts "$rpm1" "$debuginfo1"
  rpm --root "$root" -V jianmen jianmen-debuginfo
  mode_owner "$root/etc/jianmen/jianmen.toml" "640 root:root"
  "$root/usr/bin/jianmen" --version | grep -q "$version"
}
check "rpm --root: installs with its -debuginfo, verifies (rpm -V), config 0640, binary runs" rpm_root_install

echo "== the unit's hardening"
exposure=$(systemd-analyze security --offline=true packaging/jianmen.service 2>/dev/null |
  sed -n 's/.*Overall exposure level for jianmen.service: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security jianmen.service: overall exposure ${exposure:-?}"
check "exposure level at most 2.0" python3 -c "import sys; sys.exit(0 if float('${exposure:-99}') <= 2.0 else 1)"

echo "== dpkg -i ${deb1##*/}"
dpkg -i "$deb1" >"$work/dpkg1.log" 2>&1 || { cat "$work/dpkg1.log"; exit 1; }
touch "$MARK"
installed_layout() {
  getent passwd jianmen | grep -q ':/usr/sbin/nologin$'
  mode_owner /var/lib/jianmen "750 jianmen:jianmen"
  mode_owner /var/spool/jianmen "750 jianmen:jianmen"
  mode_owner /var/log/jianmen "750 jianmen:jianmen"
  mode_owner /etc/jianmen "750 root:jianmen"
  mode_owner /etc/jianmen/jianmen.toml "640 root:jianmen"
}
check "account jianmen (nologin) and directories with their owners and modes" installed_layout
# A debugger finds source lines for the installed binary through jianmen-dbgsym, and only then.
source_line() { gdb -batch -nx -ex 'info line jianmen::main' /usr/bin/jianmen 2>&1 | grep -q 'Line [0-9]* of ".*main\.rs"'; }
no_source_line() { ! source_line; }
check "without jianmen-dbgsym gdb finds no source line for jianmen::main" no_source_line
dpkg -i "$dbgsym1" >"$work/dpkg-dbgsym.log" 2>&1 || { cat "$work/dpkg-dbgsym.log"; exit 1; }
check "with jianmen-dbgsym installed gdb finds it in main.rs" source_line
check "jianmen-dbgsym purges" dpkg -P jianmen-dbgsym
check "the packaged configuration passes check-config" \
  setpriv --reuid=jianmen --regid=jianmen --init-groups -- /usr/bin/jianmen check-config --config /etc/jianmen/jianmen.toml

# The test's configuration: privileged loopback ports, a downstream smtp-sink, fast retries.
sink_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >/etc/jianmen/jianmen.toml <<EOF
[server]
hostname = "mx.pkgtest.example"
data_dir = "/var/lib/jianmen"
spool_dir = "/var/spool/jianmen"
user = "jianmen"

[smtp]
listen = ["127.0.0.1:$SMTP_PORT"]

[tls]
self_signed = true

[domains]
protected = ["pkgtest.example"]

[[route]]
domain = "pkgtest.example"
host = "127.0.0.1"
port = $sink_port
tls = "none"

[delivery]
retry_initial_secs = 1
retry_max_secs = 2

[metrics]
listen = "127.0.0.1:0"

[console]
listen = "127.0.0.1:$CONSOLE_PORT"
EOF
sink_dir=$work/sink
mkdir -p "$sink_dir"
chmod 777 "$sink_dir"
start_sink() {
  smtp-sink -u nobody -d "$sink_dir/" "127.0.0.1:$sink_port" 64 >/dev/null 2>&1 &
  sink_pid=$!
  wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$sink_port"
}
stop_sink() { kill "$sink_pid"; wait "$sink_pid" 2>/dev/null || true; sink_pid=""; }

# As systemd runs the unit: its own ExecStartPre and ExecStart lines, User=jianmen,
# AmbientCapabilities= and CapabilityBoundingSet=CAP_NET_BIND_SERVICE, NoNewPrivileges, UMask.
unit=/lib/systemd/system/jianmen.service
as_service() {
  umask 0077
  exec setpriv --reuid=jianmen --regid=jianmen --init-groups \
    --inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service \
    --bounding-set=-all,+net_bind_service --no-new-privs -- "$@"
}
start_gateway() {
  local pre start
  # The unit's command lines split on blanks, as systemd does.
  read -r -a pre <<<"$(sed -n 's/^ExecStartPre=//p' "$unit")"
  read -r -a start <<<"$(sed -n 's/^ExecStart=//p' "$unit")"
  (as_service "${pre[@]}") >>"$work/gateway.log" 2>&1 || return 1
  # exec all the way down: $! is the gateway itself.
  (as_service "${start[@]}") >>"$work/gateway.log" 2>&1 &
  gateway_pid=$!
  wait_for 60 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SMTP_PORT"
}
# The running gateway is the installed binary, not a process left from before an upgrade.
runs_installed_binary() { [ "$(readlink "/proc/$gateway_pid/exe")" = /usr/bin/jianmen ]; }
stop_gateway() {
  kill -TERM "$gateway_pid"
  wait "$gateway_pid" 2>/dev/null || true
  gateway_pid=""
  ! bash -c "exec 3<>/dev/tcp/127.0.0.1/$SMTP_PORT" 2>/dev/null
}
send() {
  swaks --server "127.0.0.1:$SMTP_PORT" --from "sender@outside.example" --to "user@pkgtest.example" \
    --header "Subject: packaging test $1" --body "Message $1 crosses the pass." >"$work/swaks-$1.log" 2>&1
}
delivered() { grep -rqs "packaging test $1" "$sink_dir"; }

start_sink
check "the service starts as the unit says, on privileged port $SMTP_PORT" start_gateway
check "the process listening is /usr/bin/jianmen" runs_installed_binary
service_privileges() {
  local status uid
  status=$(cat "/proc/$gateway_pid/status")
  uid=$(id -u jianmen)
  grep -Eq "^Uid:\s+$uid\s+$uid\s+$uid\s+$uid$" <<<"$status"
  grep -Eq "^CapEff:\s+0000000000000400$" <<<"$status"
  grep -Eq "^CapBnd:\s+0000000000000400$" <<<"$status"
  grep -Eq "^NoNewPrivs:\s+1$" <<<"$status"
}
check "/proc: uid jianmen, only CAP_NET_BIND_SERVICE effective and bounding, no-new-privs" service_privileges
check "the console answers HTTPS" \
  bash -c "curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1:$CONSOLE_PORT/ | grep -Eq '^(200|30[0-9])$'"
send_and_deliver() { send "$1" && wait_for 30 delivered "$1"; }
check "a message is accepted and delivered downstream" send_and_deliver one

echo "== upgrade to ${deb2##*/} with mail in the queue"
stop_sink
check "a message is accepted (250) while downstream is down" send two
check "the service stops on SIGTERM and frees its port" stop_gateway
check "it waits in the spool" bash -c "[ -n \"\$(find /var/spool/jianmen -type f)\" ]"
dpkg -i "$deb2" >"$work/dpkg2.log" 2>&1 || { cat "$work/dpkg2.log"; exit 1; }
check "the new version is installed" bash -c "dpkg -s jianmen | grep -qx 'Version: ${version}~pkgtest2'"
check "the edited configuration survives the upgrade" grep -q mx.pkgtest.example /etc/jianmen/jianmen.toml
start_sink
check "the upgraded service starts" start_gateway
check "the process is the upgraded binary" runs_installed_binary
check "the queued message is delivered after the upgrade" wait_for 60 delivered two
check "the upgraded service stops on SIGTERM" stop_gateway

echo "== remove and purge"
dpkg -r jianmen >"$work/dpkg-r.log" 2>&1
check "remove: binary gone; configuration, database and spool kept" bash -c \
  "[ ! -e /usr/bin/jianmen ] && [ -f /etc/jianmen/jianmen.toml ] && [ -f /var/lib/jianmen/jianmen.db ] && [ -d /var/spool/jianmen ]"
dpkg -P jianmen >"$work/dpkg-p.log" 2>&1
check "purge: configuration gone; database and spool kept" bash -c \
  "[ ! -e /etc/jianmen ] && [ -f /var/lib/jianmen/jianmen.db ] && [ -d /var/spool/jianmen ]"

if [ "$failed" -gt 0 ]; then
  echo "---- the gateway's log"
  tail -n 40 "$work/gateway.log" || true
fi
checks_summary packaging
