#!/usr/bin/env bash
# [JIANMEN_MAINTAINER="Name <address>"] packaging/build.sh [--target TRIPLE] [--profile release|dev]
#   [--version VERSION] [--out DIR]
# Builds jianmen and makes its .deb (cargo-deb) and .rpm (cargo-generate-rpm), with the debug
# information split into jianmen-dbgsym (.deb) and jianmen-debuginfo (.rpm); prints the four
# package paths, one per line, last: the -dbgsym .deb, the -debuginfo .rpm, then the .deb and the
# .rpm (so `tail -n 2` gives the two that install the gateway). Default: this machine's target, release profile,
# the workspace version, target/packages/. Cross targets build through cross/build.sh (run
# cross/setup-<target>.sh once). Installs cargo-deb and cargo-generate-rpm when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
target=""
profile=release
version=""
out=target/packages
while [ $# -gt 0 ]; do
  case "$1" in
    --target) target=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
case "$profile" in
  release) profile_dir=release ;;
  dev) profile_dir=debug ;;
  *) echo "--profile must be release or dev" >&2; exit 2 ;;
esac
# The oldest glibc the packaged binaries may need: Kylin V10's, UOS 20's and openEuler 20.03's.
GLIBC_FLOOR=2.28
command -v cargo-deb >/dev/null 2>&1 || cargo install --locked cargo-deb --version 3.8.0 >&2
command -v cargo-generate-rpm >/dev/null 2>&1 ||
  cargo install --locked cargo-generate-rpm --version 0.21.1 >&2
mkdir -p "$out"
out=$(cd "$out" && pwd)

# zig links the x86_64 and aarch64 binaries against glibc $GLIBC_FLOOR's symbols (cargo-zigbuild;
# zig from PyPI's ziglang in a virtual environment kept between runs).
command -v cargo-zigbuild >/dev/null 2>&1 ||
  cargo install --locked cargo-zigbuild --version 0.24.1 >&2
zig_venv=${JIANMEN_ZIG_VENV:-/var/tmp/jianmen-zig-venv}
if ! "$zig_venv/bin/python3" -m ziglang version >/dev/null 2>&1; then
  python3 -m venv "$zig_venv" >&2
  "$zig_venv/bin/pip" install -q ziglang==0.17.1 >&2
fi
export JIANMEN_ZIG_VENV=$zig_venv

target_args=()
runner=()
if [ -n "$target" ] && [ "$target" != "$(rustc -vV | sed -n 's/^host: //p')" ]; then
  release_flag=()
  [ "$profile" = release ] && release_flag=(--release)
  glibc_flag=()
  [ "$target" = aarch64-unknown-linux-gnu ] && glibc_flag=(--glibc "$GLIBC_FLOOR")
  bin=$(cross/build.sh "$target" "${release_flag[@]}" "${glibc_flag[@]}" | tail -n 1)
  . cross/env.sh
  cross_env "$target"
  # Where cross/build.sh built (a zig build has a target directory of its own).
  export CARGO_TARGET_DIR=${bin%/"$target"/*}
  read -r -a runner <<<"$JIANMEN_CROSS_RUNNER"
  # cargo-deb and cargo-generate-rpm find the binary under $CARGO_TARGET_DIR/<target>/.
  target_args=(--target "$target")
else
  # This machine's x86_64, linked against glibc 2.28's symbols, so the packages run on Kylin V10,
  # UOS 20 and openEuler 20.03 (glibc 2.28), not only on the build machine's glibc.
  target=x86_64-unknown-linux-gnu
  CARGO_TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  export CARGO_TARGET_DIR
  # A build ID names the binary to the debug package (zig's linker adds none by itself).
  PATH="$zig_venv/bin:$PATH" cargo-zigbuild rustc --locked -p jianmen --bin jianmen --profile "$profile" \
    --target "$target.$GLIBC_FLOOR" -- -C link-arg=-Wl,--build-id=sha1 >&2
  bin=$CARGO_TARGET_DIR/$target/$profile_dir/jianmen
  target_args=(--target "$target")
fi
# Fails the build when the binary needs a newer glibc than the floor (a static one needs none).
newest=$(readelf -W --dyn-syms "$bin" | { grep -o 'GLIBC_[0-9.]*' || true; } | sed 's/GLIBC_//' | sort -uV | tail -n 1)
if [ -n "$newest" ] && [ "$(printf '%s\n%s\n' "$newest" "$GLIBC_FLOOR" | sort -V | tail -n 1)" != "$GLIBC_FLOOR" ]; then
  echo "$bin needs GLIBC_$newest, newer than the floor $GLIBC_FLOOR" >&2
  exit 1
fi
# A musl build is shipped static: it needs nothing of the system's libc.
if [[ "$target" == *-musl ]] && readelf -W -l -d "$bin" | grep -Eq 'program interpreter|\(NEEDED\)'; then
  echo "$bin is not static" >&2
  exit 1
fi
# What goes into the packages is staged in <target dir>/<profile>/package/ (the paths in
# gateway/cli/Cargo.toml's package metadata): the binary without its debug information (symbols
# stay, for backtraces), manual pages, completions and the licence list; the debug information
# goes to jianmen.debug, which the debug packages install where debuggers look it up by build ID.
stage=$(dirname "$bin")/package
rm -rf "$stage"
mkdir -p "$stage"
build_id=$(readelf -n "$bin" | sed -n 's/^ *Build ID: *//p')
[ -n "$build_id" ] || { echo "$bin has no build ID" >&2; exit 1; }
objcopy=${JIANMEN_CROSS_OBJCOPY:-objcopy}
"$objcopy" --only-keep-debug --compress-debug-sections=zlib "$bin" "$stage/jianmen.debug"
# Function symbols stay (Rust's backtraces name frames with them); the assembler's local labels
# go (LoongArch's relaxation leaves 120 MB of them).
"${JIANMEN_CROSS_STRIP:-strip}" --strip-debug --discard-locals -o "$stage/jianmen" "$bin"
"$objcopy" --add-gnu-debuglink="$stage/jianmen.debug" "$stage/jianmen"
# Manual pages and completions, from the binary itself (under QEMU for a cross target).
"${runner[@]}" "$stage/jianmen" generate-docs --out "$stage/jianmen-docs"

# The crates linked into this target's binary, with their licences.
cargo metadata --format-version 1 --locked ${target:+--filter-platform "$target"} | python3 -c '
import json, sys
meta = json.load(sys.stdin)
packages = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
root = next(i for i, p in packages.items() if p["name"] == "jianmen")
seen, todo = set(), [root]
while todo:
    node = nodes[todo.pop()]
    for dep in node["deps"]:
        if any(k["kind"] is None for k in dep["dep_kinds"]) and dep["pkg"] not in seen:
            seen.add(dep["pkg"])
            todo.append(dep["pkg"])
print("Crates linked into jianmen, with their licences (from their Cargo.toml):\n")
for p in sorted((packages[i] for i in seen), key=lambda p: (p["name"], p["version"])):
    print(p["name"], p["version"] + ":", p.get("license") or "see " + str(p.get("license_file")))
' >"$stage/third-party-licenses.txt"

deb_version=()
rpm_version=()
if [ -n "$version" ]; then
  deb_version=(--deb-version "$version")
  rpm_version=(--set-metadata "version = \"$version\"")
fi
# Who answers for the packages: "Name <address>" of the organisation that ships them. The
# metadata names no address of its own (there is none to invent); release builds pass theirs.
maintainer=()
rpm_vendor=()
if [ -n "${JIANMEN_MAINTAINER:-}" ]; then
  case "$JIANMEN_MAINTAINER" in
    *'<'*@*'>') ;;
    *) echo "JIANMEN_MAINTAINER must read \"Name <address>\"" >&2; exit 2 ;;
  esac
  maintainer=(--maintainer "$JIANMEN_MAINTAINER")
  rpm_vendor=(--set-metadata "vendor = \"${JIANMEN_MAINTAINER//\"/}\"")
fi
deb=$(cargo deb --locked -p jianmen --no-build --no-strip --profile "$profile" "${target_args[@]}" \
  "${deb_version[@]}" "${maintainer[@]}" --output "$out" | tail -n 1)
rpm=$(cargo generate-rpm -p gateway/cli --profile "$profile" "${target_args[@]}" "${rpm_version[@]}" \
  "${rpm_vendor[@]}" -o "$out" | tail -n 1)
[ -f "$rpm" ] || rpm=$(ls -t "$out"/*.rpm | head -n 1)

# The debug packages: the version and architecture of the packages they serve, which they require
# exactly; one file, /usr/lib/debug/.build-id/<first 2 hex digits>/<the rest>.debug.
debug_path=usr/lib/debug/.build-id/${build_id:0:2}/${build_id:2}.debug
dbg=$(mktemp -d)
trap 'rm -rf "$dbg"' EXIT
install -D -m 644 "$stage/jianmen.debug" "$dbg/deb/$debug_path"
mkdir "$dbg/deb/DEBIAN"
deb_version=$(dpkg-deb -f "$deb" Version)
deb_arch=$(dpkg-deb -f "$deb" Architecture)
cat >"$dbg/deb/DEBIAN/control" <<CONTROL
Package: jianmen-dbgsym
Source: jianmen
Version: $deb_version
Architecture: $deb_arch
Maintainer: $(dpkg-deb -f "$deb" Maintainer)
Installed-Size: $(du -sk --exclude=DEBIAN "$dbg/deb" | cut -f1)
Depends: jianmen (= $deb_version)
Section: debug
Priority: optional
Description: debug symbols for jianmen
Build-Ids: $build_id
Auto-Built-Package: debug-symbols
CONTROL
dbgsym=$out/jianmen-dbgsym_${deb_version}_${deb_arch}.deb
# The debug sections are zlib-compressed already: xz saves a quarter more of a release build's,
# and would spend minutes of CPU on a dev build's 150 MB to save a tenth, which is left as it is.
deb_compression=xz rpm_payload=w6.xzdio
[ "$profile" = dev ] && deb_compression=none rpm_payload=w.ufdio
dpkg-deb --root-owner-group -Z"$deb_compression" --build "$dbg/deb" "$dbgsym" >/dev/null
read -r rpm_version rpm_release rpm_arch rpm_vendor_name < <(rpm -qp \
  --qf '%{VERSION} %{RELEASE} %{ARCH} %{VENDOR}\n' "$rpm" 2>/dev/null)
mkdir -p "$dbg/rpm"
rpmbuild -bb --quiet --target "$rpm_arch-linux" packaging/rpm/debuginfo.spec \
  --define "_topdir $dbg/rpm" --define "_rpmdir $out" \
  --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" --define "_binary_payload $rpm_payload" \
  --define "jm_version $rpm_version" --define "jm_release $rpm_release" \
  --define "jm_vendor $rpm_vendor_name" --define "jm_debug $stage/jianmen.debug" \
  --define "jm_debug_path /$debug_path" >&2
debuginfo=$out/jianmen-debuginfo-$rpm_version-$rpm_release.$rpm_arch.rpm
[ -f "$debuginfo" ] || { echo "rpmbuild made no $debuginfo" >&2; exit 1; }
echo "$dbgsym"
echo "$debuginfo"
echo "$deb"
echo "$rpm"
