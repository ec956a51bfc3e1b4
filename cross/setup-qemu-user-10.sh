#!/usr/bin/env bash
# Puts qemu-user 10 from Debian's bookworm-backports into $JIANMEN_QEMU10_DIR (default
# /var/tmp/jianmen-cross/qemu-10) without installing it over Debian 12's qemu-user 7.2: its
# binaries are static, so the kernel can run them inside a foreign root file system through
# binfmt_misc (cross/binfmt.sh), and qemu-loongarch64 10 has LSX/LASX, which 7.2 lacks.
# Idempotent; needs root (apt-get download through the machine's Debian mirror). Prints the
# directory last.
set -euo pipefail
VERSION=1:10.0.2+ds-2+deb13u1~bpo12+1
DIR=${JIANMEN_QEMU10_DIR:-/var/tmp/jianmen-cross/qemu-10}
if [ "$(cat "$DIR/VERSION" 2>/dev/null)" != "$VERSION" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # A sources list of its own: bookworm-backports is not added to the machine's.
  cat >"$work/backports.sources" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
  apt_opts=(-o "Dir::Etc::sourcelist=$work/backports.sources" -o Dir::Etc::sourceparts=-
    -o "Dir::State::lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root)
  apt-get "${apt_opts[@]}" -q update >&2
  (cd "$work" && apt-get "${apt_opts[@]}" -q download "qemu-user=$VERSION" >&2)
  dpkg-deb -x "$work"/qemu-user_*.deb "$work/root"
  mkdir -p "$DIR"
  for arch in aarch64 loongarch64; do
    install -m 755 "$work/root/usr/bin/qemu-$arch" "$DIR/qemu-$arch"
    # The kernel's ELF magic and mask for the architecture, as Debian registers them.
    install -m 644 "$work/root/usr/share/qemu/binfmt.d/qemu-$arch.conf" "$DIR/qemu-$arch.conf"
  done
  echo "$VERSION" >"$DIR/VERSION"
fi
echo "$DIR"
