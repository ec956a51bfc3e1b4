#!/usr/bin/env bash
# packaging/test-arch.sh <target>: the packages packaging/build.sh makes for a foreign architecture
# (aarch64-unknown-linux-gnu: Kunpeng, Phytium; loongarch64-unknown-linux-musl: Loongson),
# installed and run on a Debian root file system of that architecture, under qemu-user through
# binfmt_misc (cross/binfmt.sh), as root:
#  - the packages' architecture fields, and the binary inside each: glibc 2.28 at most (aarch64)
#    or static (loongarch64);
#  - the .deb installed by apt inside the root (its postinst runs there), the account and
#    directories it makes, `jianmen check-config` as the service account, a `jianmen demo` mail
#    round trip (swaks on this machine → the emulated gateway → its demo mailbox), apt remove;
#  - the .rpm installed into a fresh copy of the root by `rpm --root` with its scriptlets (run by
#    the root's own shell under emulation), rpm -V, check-config, rpm -e.
# The roots are Debian bookworm (arm64) and sid (loong64: Debian's newest architecture has no
# stable release yet), made by mmdebstrap once and kept in $JIANMEN_ROOTS_DIR. Prints
# "packages <arch>: N passed, M failed" last.
set -euo pipefail
target=${1:?usage: packaging/test-arch.sh <aarch64-unknown-linux-gnu|loongarch64-unknown-linux-musl>}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "packaging/test-arch.sh needs root (binfmt_misc, chroot)" >&2; exit 2; }
export PATH="$PATH:/usr/sbin:/sbin"
case "$target" in
  aarch64-unknown-linux-gnu)
    qemu_arch=aarch64 deb_arch=arm64 rpm_arch=aarch64 suite=bookworm binary_check=at_most_2_28
    # With SVE, tract's matrix code runs ~8× slower under QEMU (cross/README.md).
    launcher=() emulation=(QEMU_CPU=max,sve=off) ;;
  loongarch64-unknown-linux-musl)
    qemu_arch=loongarch64 deb_arch=loong64 rpm_arch=loongarch64 suite=sid binary_check=is_static
    # As cross/env.sh's runner: without address randomisation (under QEMU, ~1 run in 30 failed
    # with "memory allocation failed" with it).
    launcher=(setarch -R) emulation=() ;;
  *) echo "unsupported target: $target" >&2; exit 2 ;;
esac

work=$(mktemp -d)
chmod 755 "$work"
. tests/checks.sh
. cross/binfmt.sh
mounts=()
demo_pid=""
cleanup() {
  [ -n "$demo_pid" ] && kill "$demo_pid" 2>/dev/null && wait "$demo_pid" 2>/dev/null
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[i]}" || umount -l "${mounts[i]}"; done
  binfmt_unregister
  rm -rf "$work"
}
trap cleanup EXIT

need=()
for p in mmdebstrap rpm swaks; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi
qemu_dir=$(cross/setup-qemu-user-10.sh | tail -n 1)
binfmt_register "$qemu_arch" "$qemu_dir"

echo "== building the $deb_arch packages (release)"
mapfile -t packages < <(packaging/build.sh --target "$target" --out "$work/packages" | tail -n 4)
dbgsym=${packages[0]}
debuginfo=${packages[1]}
deb=${packages[2]}
rpm=${packages[3]}
printf '%s\n' "${packages[@]}"
check ".deb and -dbgsym .deb Architecture: $deb_arch" bash -c \
  "[ \"\$(dpkg-deb -f '$deb' Architecture) \$(dpkg-deb -f '$dbgsym' Architecture)\" = '$deb_arch $deb_arch' ]"
check ".rpm and -debuginfo .rpm architecture: $rpm_arch" bash -c \
  "[ \"\$(rpm -qp --qf '%{ARCH} ' '$rpm' '$debuginfo' 2>/dev/null)\" = '$rpm_arch $rpm_arch ' ]"
dpkg-deb -x "$deb" "$work/deb-files"
dpkg-deb -x "$dbgsym" "$work/deb-files"
mkdir -p "$work/rpm-files"
# Debian's rpm2cpio exits 1 after writing a whole zstd payload; what cpio extracts is checked.
for p in "$rpm" "$debuginfo"; do
  { rpm2cpio "$p" || true; } | (cd "$work/rpm-files" && cpio -idm --quiet)
done
check "the .deb's binary: $binary_check" "$binary_check" "$work/deb-files/usr/bin/jianmen"
check "the .rpm's binary: $binary_check" "$binary_check" "$work/rpm-files/usr/bin/jianmen"
# A static binary needs nothing of the root it runs in: alone in an empty one, it runs.
runs_alone() {
  mkdir -p "$work/empty-root/usr/bin"
  cp "$work/deb-files/usr/bin/jianmen" "$work/empty-root/usr/bin/"
  "${launcher[@]}" chroot "$work/empty-root" /usr/bin/jianmen --version
}
[ "$binary_check" = is_static ] && check "the binary runs alone in a root that holds no libc" runs_alone
debug_file() { echo "$1/usr/lib/debug/.build-id/$(build_id_of "$1/usr/bin/jianmen" | sed 's/^../&\//').debug"; }
check "-dbgsym: the debug information of the .deb's binary, under its build ID" \
  debug_file_serves "$work/deb-files/usr/bin/jianmen" "$(debug_file "$work/deb-files")"
check "-debuginfo: the debug information of the .rpm's binary, under its build ID" \
  debug_file_serves "$work/rpm-files/usr/bin/jianmen" "$(debug_file "$work/rpm-files")"

roots=${JIANMEN_ROOTS_DIR:-/var/tmp/jianmen-cross/roots}
tarball=$roots/debian-$suite-$deb_arch.tar
if [ ! -s "$tarball" ]; then
  echo "== making a Debian $suite $deb_arch root with mmdebstrap (minutes, once)"
  mkdir -p "$roots"
  # check/qemu: arch-test does not know loong64; the binfmt entry above is what runs the root.
  # Check-Valid-Until: the machine's Debian mirror may serve a Release file past its date (its
  # signature is still checked).
  mmdebstrap --quiet --format=tar --skip=check/qemu --arch="$deb_arch" --variant=apt \
    --include=ca-certificates,passwd --aptopt='Acquire::Check-Valid-Until "false"' "$suite" \
    "$tarball.part" "deb http://deb.debian.org/debian $suite main"
  mv "$tarball.part" "$tarball"
fi
make_root() {
  mkdir "$1"
  tar -xf "$tarball" -C "$1"
  mount -t proc proc "$1/proc" && mounts+=("$1/proc")
  mount --bind /dev "$1/dev" && mounts+=("$1/dev")
  mount --bind /dev/pts "$1/dev/pts" && mounts+=("$1/dev/pts")
}
# in_root ROOT COMMAND…: runs the root's own COMMAND (emulated) with a clean environment.
in_root() {
  local root=$1
  shift
  "${launcher[@]}" chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    "${emulation[@]}" "$@"
}
mode_owner_in() { [ "$(in_root "$1" stat -c '%a %U:%G' "$2")" = "$3" ] || { in_root "$1" stat -c "%n: %a %U:%G, expected $3" "$2"; return 1; }; }
layout_in() {
  in_root "$1" getent passwd jianmen | grep -q ':/usr/sbin/nologin$' || { echo "no account jianmen"; return 1; }
  mode_owner_in "$1" /var/lib/jianmen "750 jianmen:jianmen"
  mode_owner_in "$1" /var/spool/jianmen "750 jianmen:jianmen"
  mode_owner_in "$1" /etc/jianmen/jianmen.toml "640 root:jianmen"
}
check_config_in() {
  in_root "$1" setpriv --reuid=jianmen --regid=jianmen --init-groups -- \
    /usr/bin/jianmen check-config --config /etc/jianmen/jianmen.toml
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# demo_round_trip ROOT: the root's jianmen runs `demo`; a message sent here reaches its mailbox.
demo_round_trip() {
  local root=$1 smtp mailbox console metrics subject="$deb_arch round trip $$"
  smtp=$(free_port) mailbox=$(free_port) console=$(free_port) metrics=$(free_port)
  # A simple command, not the function: $! is then the gateway itself (setarch, chroot and env
  # exec), which the kill below must reach.
  "${launcher[@]}" chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    "${emulation[@]}" /usr/bin/jianmen demo --dir /var/tmp/demo --smtp "127.0.0.1:$smtp" \
    --mailbox "127.0.0.1:$mailbox" --console "127.0.0.1:$console" --metrics "127.0.0.1:$metrics" \
    >"$work/demo.log" 2>&1 &
  demo_pid=$!
  listening() { bash -c "exec 3<>/dev/tcp/127.0.0.1/$smtp" 2>/dev/null; }
  # Polls until the demo listens or has exited.
  wait_for 180 bash -c "! kill -0 $demo_pid || exec 3<>/dev/tcp/127.0.0.1/$smtp" 2>/dev/null
  listening || { tail -n 20 "$work/demo.log"; return 1; }
  swaks --server "127.0.0.1:$smtp" --from sender@outside.example --to "alice@demo.jianmen.test" \
    --header "Subject: $subject" --body "Across the pass on $deb_arch." >"$work/swaks.log" 2>&1 ||
    { tail -n 5 "$work/swaks.log"; return 1; }
  wait_for 120 grep -rqs "Subject: $subject" "$root/var/tmp/demo/mailbox/alice@demo.jianmen.test/"
  local delivered=$?
  kill "$demo_pid" && wait "$demo_pid" 2>/dev/null
  demo_pid=""
  # Nothing of the demo outlives it (the root is unmounted and deleted next).
  ! pgrep -f "jianmen demo --dir /var/tmp/demo --smtp 127.0.0.1:$smtp" || { echo "the demo outlived its kill"; return 1; }
  [ "$delivered" = 0 ] || { tail -n 20 "$work/demo.log"; return 1; }
}

echo "== the .deb in a Debian $suite $deb_arch root, with apt"
deb_root=$work/deb-root
make_root "$deb_root"
cp "$deb" "$deb_root/tmp/jianmen.deb"
check "apt installs the .deb (postinst runs under emulation)" \
  in_root "$deb_root" apt-get install -y -q /tmp/jianmen.deb
deb_installed() { [ "$(in_root "$deb_root" dpkg-query -W -f '${Status}' jianmen)" = "install ok installed" ]; }
check "dpkg: installed" deb_installed
check "postinst: account jianmen (nologin), directories and configuration with their owners and modes" layout_in "$deb_root"
check "check-config passes as the service account" check_config_in "$deb_root"
check "jianmen demo: a message sent to the emulated gateway reaches its mailbox" demo_round_trip "$deb_root"
check "apt removes it (prerm runs); the configuration stays" bash -c \
  "chroot '$deb_root' apt-get remove -y -q jianmen && [ ! -e '$deb_root/usr/bin/jianmen' ] && [ -f '$deb_root/etc/jianmen/jianmen.toml' ]"

echo "== the .rpm in a fresh $deb_arch root, with rpm --root"
rpm_root=$work/rpm-root
make_root "$rpm_root"
rpm --root "$rpm_root" --initdb
# --nodeps: the Debian root's packages are not in its rpm database; --ignorearch: rpm runs here.
check "rpm --root installs the .rpm, its scriptlets run under emulation" \
  rpm --root "$rpm_root" -i --nodeps --ignorearch "$rpm"
# The install script gives the configuration to group jianmen on purpose; nothing else differs.
rpm_verifies() {
  local report
  report=$(rpm --root "$rpm_root" -V --nodeps jianmen) && return 0
  [ "$report" = "......G..  c /etc/jianmen/jianmen.toml" ] || { echo "$report"; return 1; }
}
check "rpm -V: every file as packaged (the configuration's group set by the script)" rpm_verifies
check "scriptlet: account jianmen (nologin), directories and configuration with their owners and modes" layout_in "$rpm_root"
check "check-config passes as the service account" check_config_in "$rpm_root"
check "rpm -e removes it" bash -c "rpm --root '$rpm_root' -e jianmen && [ ! -e '$rpm_root/usr/bin/jianmen' ]"

if [ "$failed" -gt 0 ] && [ -f "$work/demo.log" ]; then
  echo "---- the demo's log"
  tail -n 40 "$work/demo.log"
fi
echo "sizes: binary $(stat -c %s "$work/deb-files/usr/bin/jianmen"), .deb $(stat -c %s "$deb"), -dbgsym $(stat -c %s "$dbgsym"), .rpm $(stat -c %s "$rpm"), -debuginfo $(stat -c %s "$debuginfo") bytes"
checks_summary "packages $deb_arch"
