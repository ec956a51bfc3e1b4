#!/usr/bin/env bash
# Runs Jianmen's whole test suite on a fresh Debian 12 machine: installs the real peers the tests
# talk to (Postfix smtp-source/smtp-sink, swaks, dnsmasq, NSD, ClamAV clamd, PostgreSQL) and the
# model trainer's Python requirements, Chromium and playwright-core for the console, Tongsuo and
# GmSSL (built from crates.io's tongsuo-src and gmssl-src) for national-cipher TLS, checks
# formatting and lints, builds, tests.
# Needs root (or sudo) for apt and for the disk-full test's tmpfs mount.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

need=()
command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/sbin/smtp-sink ] || need+=(postfix)
command -v swaks >/dev/null 2>&1 || need+=(swaks)
# swaks --tls needs these; --no-install-recommends below leaves them out.
perl -MNet::SSLeay -MIO::Socket::SSL -e 1 2>/dev/null || need+=(libnet-ssleay-perl libio-socket-ssl-perl)
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
[ -x /usr/sbin/clamd ] || need+=(clamav-daemon)
command -v iconv >/dev/null 2>&1 || need+=(libc-bin)
command -v dkimsign >/dev/null 2>&1 || need+=(python3-dkim)
# python3-dkim checks Ed25519 signatures (the outbound DKIM tests) with nacl.
/usr/bin/python3 -c 'import nacl.signing' 2>/dev/null || need+=(python3-nacl)
# arcsign (python3-dkim) needs authres to seal ARC sets.
/usr/bin/python3 -c 'import authres' 2>/dev/null || need+=(python3-authres)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
[ -x /usr/bin/chromium ] || need+=(chromium)
fc-list 2>/dev/null | grep -qi 'wqy\|noto.*cjk' || need+=(fonts-wqy-microhei)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
command -v curl >/dev/null 2>&1 || need+=(curl ca-certificates)
# The outbound verification test makes its CA and server certificate with openssl.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v rpm >/dev/null 2>&1 || need+=(rpm)
command -v cpio >/dev/null 2>&1 || need+=(cpio)
command -v strip >/dev/null 2>&1 || need+=(binutils)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# The DANE test signs zones (ldns-signzone) and serves them with NSD.
command -v ldns-signzone >/dev/null 2>&1 || need+=(ldnsutils)
# The relay tests reach the internet through a SOCKS5 relay node, and run Postfix with a
# resolv.conf of its own (unshare, mount: util-linux).
command -v microsocks >/dev/null 2>&1 || need+=(microsocks)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
# ...and log in to a smart host: Postfix with Dovecot's SASL socket.
command -v dovecot >/dev/null 2>&1 || need+=(dovecot-core)
# Recall reaches mailboxes in Dovecot (IMAP, filled over LMTP by Postfix).
[ -x /usr/lib/dovecot/imap ] || need+=(dovecot-imapd)
[ -x /usr/lib/dovecot/lmtp ] || need+=(dovecot-lmtpd)
# GmSSL (the second national-cipher peer) builds with CMake.
command -v cmake >/dev/null 2>&1 || need+=(cmake)
# Servers whose commands the tests start themselves; their packaged services are kept from
# starting (port 53, 389 or 5432 may be taken): NSD for the DANE test, OpenLDAP's slapd as the
# directory recipients sign in with, PostgreSQL.
own_servers=()
[ -x /usr/sbin/nsd ] || own_servers+=(nsd)
[ -x /usr/sbin/slapd ] || own_servers+=(slapd)
# PostgreSQL for the store's cluster mode: the tests run throwaway clusters of their own
# (initdb in a temporary folder), never the packaged one.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || own_servers+=(postgresql)
if [ ${#need[@]} -gt 0 ] || [ ${#own_servers[@]} -gt 0 ]; then
  echo "== installing ${need[*]} ${own_servers[*]}"
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  echo "slapd slapd/no_configuration boolean true" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
fi
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ${#own_servers[@]} -gt 0 ]; then
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${own_servers[@]}" >/dev/null
  if [ -n "$policy" ]; then $SUDO rm -f "$policy"; fi
fi
export PATH="$PATH:/usr/sbin:/sbin"

# The content model's trainer, for the local-learning test: its pinned requirements (numpy,
# onnx) from PyPI in a virtual environment kept between runs.
VENV=/var/tmp/jianmen-venv
if ! "$VENV/bin/python" -c 'import numpy, onnx' 2>/dev/null; then
  echo "== python venv for the trainer"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r gateway/model/train/requirements.txt
fi
export JIANMEN_PYTHON="$VENV/bin/python"

# The threat-intelligence test's TAXII 2.1 server: medallion (OASIS's reference server), pinned,
# from PyPI in a virtual environment kept between runs.
TAXII_VENV=/var/tmp/jianmen-medallion
if ! "$TAXII_VENV/bin/python" -c 'import medallion' 2>/dev/null; then
  echo "== python venv for medallion"
  python3 -m venv "$TAXII_VENV"
  "$TAXII_VENV/bin/pip" install -q -r tests/taxii/requirements.txt
fi
export JIANMEN_MEDALLION_PYTHON="$TAXII_VENV/bin/python"

# The console's browser test: playwright-core from the npm registry drives Debian's Chromium
# (no browser download).
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "== npm ci (tests/browser)"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

# The folder of a crate pinned in Cargo.lock (the interop peers' source crates), fetched if needed.
crate_source() {
  cargo fetch --locked
  cargo metadata --format-version 1 --locked | python3 -c 'import json, os, sys
print(os.path.dirname(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == sys.argv[1])))' "$1"
}

# The national-cipher interop peer: Tongsuo's `tongsuo` command, built from the source in
# crates.io's tongsuo-src (pinned in Cargo.lock by tests/Cargo.toml), kept between runs.
TONGSUO=/var/tmp/tongsuo-850.1.1
if [ ! -x "$TONGSUO/bin/tongsuo" ]; then
  echo "== building Tongsuo 8.5 (a few minutes, once)"
  build=$(mktemp -d)
  cp -r "$(crate_source tongsuo-src)/tongsuo/." "$build"
  (cd "$build" && ./config --prefix="$TONGSUO" enable-ntls no-tests no-shared >/dev/null \
    && make -j"$(nproc)" >/dev/null && make install_sw >/dev/null)
  rm -rf "$build"
fi
export JIANMEN_TONGSUO="$TONGSUO/bin/tongsuo"

# The second national-cipher peer: GmSSL 3's `gmssl` command from crates.io's gmssl-src, kept
# between runs. The crate leaves out the demo sources its CMakeLists still names: that loop goes.
GMSSL=/var/tmp/gmssl-3.1-src0.1.0
if [ ! -x "$GMSSL/bin/gmssl" ]; then
  echo "== building GmSSL 3.1 (a minute, once)"
  build=$(mktemp -d)
  cp -r "$(crate_source gmssl-src)/gmssl/." "$build"
  python3 - "$build/CMakeLists.txt" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
text = re.sub(r"\tforeach\(name \$\{demos\}\).*?endforeach\(\)\n", "", text, flags=re.S)
open(path, "w").write(text)
PY
  (cd "$build" && cmake -S . -B b -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF >/dev/null \
    && cmake --build b --target gmssl-bin -j"$(nproc)" >/dev/null \
    && install -D -m 755 b/bin/gmssl "$GMSSL/bin/gmssl")
  rm -rf "$build"
fi
export JIANMEN_GMSSL="$GMSSL/bin/gmssl"

# Keep build products outside the clone so CI reruns are incremental; a fresh machine still works.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/jianmen-target}"
export CARGO_TERM_COLOR=never
# Incremental state only pays off for edit-compile loops; here it would double the disk used.
export CARGO_INCREMENTAL=0

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build"
cargo build --workspace --bins --locked
echo "== cargo test"
# A hung test must fail the run, not eat the CI budget.
timeout --kill-after=30 1500 cargo test --workspace --locked

echo "== packages: .deb and .rpm built, inspected, installed, upgraded, removed"
$SUDO env "PATH=$PATH" "CARGO_TARGET_DIR=$CARGO_TARGET_DIR" CARGO_INCREMENTAL=0 packaging/test.sh

echo "== appliance image: built (mmdebstrap) and booted twice in QEMU (software emulation)"
$SUDO env "PATH=$PATH" "CARGO_TARGET_DIR=$CARGO_TARGET_DIR" CARGO_INCREMENTAL=0 \
  timeout --kill-after=30 1800 image/test.sh

echo "== cargo fuzz (30 s per target)"
# cargo-fuzz passes -Z flags to rustc; this machine has only the stable toolchain, and
# RUSTC_BOOTSTRAP=1 lets stable accept them. No sanitizer: the code under test is safe Rust,
# the fuzzers look for panics, hangs and runaway memory.
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2
# verdict: the whole offline scan path, seeded with the message corpus.
for target in message archive tlcp verdict; do
  found=$(mktemp -d)
  seeds=gateway/fuzz/corpus/$target
  [ "$target" = verdict ] && seeds=gateway/fuzz/corpus/message
  RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir gateway/fuzz --sanitizer none \
    --target-dir "$CARGO_TARGET_DIR/fuzz" "$target" "$found" "$seeds" \
    -- -max_total_time=30 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 20
  rm -rf "$found"
done

echo "== cross: aarch64 (Kunpeng, Phytium) built and tested under qemu-user"
# Its own persistent target directory: Debian's rustc-web compiles it, and reruns stay incremental.
export JIANMEN_CROSS_TARGET_DIR="${JIANMEN_CROSS_TARGET_DIR:-/var/tmp/jianmen-cross-target}"
$SUDO env JIANMEN_CROSS_SYSROOT="${JIANMEN_CROSS_SYSROOT:-/var/tmp/jianmen-cross/sysroot}" \
  cross/setup-aarch64-unknown-linux-gnu.sh
# Its end-to-end part runs the packages' binary (glibc 2.28, packaging/build.sh's floor), which
# packaging/test-arch.sh below then finds built: that build moved here, and its time with it.
timeout --kill-after=30 3600 cross/test.sh aarch64-unknown-linux-gnu --glibc 2.28
echo "== packages for arm64: built (zig, glibc 2.28), installed with apt and rpm and run in an emulated Debian arm64 root"
$SUDO env "PATH=$PATH" "CARGO_TARGET_DIR=$CARGO_TARGET_DIR" CARGO_INCREMENTAL=0 \
  "JIANMEN_CROSS_TARGET_DIR=$JIANMEN_CROSS_TARGET_DIR" \
  JIANMEN_CROSS_SYSROOT="${JIANMEN_CROSS_SYSROOT:-/var/tmp/jianmen-cross/sysroot}" \
  timeout --kill-after=30 2700 packaging/test-arch.sh aarch64-unknown-linux-gnu

# loongarch64 (Loongson 3A5000/3C5000) on request: its cold build compiles std as well as the
# gateway (~45 min on 2 cores), too long for CI's budget on a machine without its cache.
if [ "${JIANMEN_CROSS_LOONGARCH:-0}" = 1 ]; then
  echo "== cross: loongarch64 (Loongson) built and tested under qemu-user"
  $SUDO env JIANMEN_CROSS_ZIG_VENV="${JIANMEN_CROSS_ZIG_VENV:-/var/tmp/jianmen-cross/zig-venv}" \
    cross/setup-loongarch64-unknown-linux-musl.sh
  timeout --kill-after=30 5400 cross/test.sh loongarch64-unknown-linux-musl
  echo "== cross: the loongarch64 LSX/LASX build (-C target-cpu=la464) under qemu-user 10"
  timeout --kill-after=30 5400 cross/test.sh loongarch64-unknown-linux-musl --cpu la464
  echo "== packages for loong64: built, installed with apt and rpm and run in an emulated Debian loong64 root"
  $SUDO env "PATH=$PATH" "CARGO_TARGET_DIR=$CARGO_TARGET_DIR" CARGO_INCREMENTAL=0 \
    "JIANMEN_CROSS_TARGET_DIR=$JIANMEN_CROSS_TARGET_DIR" \
    JIANMEN_CROSS_ZIG_VENV="${JIANMEN_CROSS_ZIG_VENV:-/var/tmp/jianmen-cross/zig-venv}" \
    timeout --kill-after=30 2700 packaging/test-arch.sh loongarch64-unknown-linux-musl
fi
