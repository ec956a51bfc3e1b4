#!/usr/bin/env bash
# image/build.sh --deb FILE [--out FILE] [--data-mib N] [--mirror URL]
# Builds the Jianmen appliance: a bootable x86_64 UEFI disk image (raw, sparse) holding a minimal
# Debian 12 (mmdebstrap), its kernel, systemd and the jianmen .deb. Prints the image's path last.
#
#   partition 1  EFI system (FAT)     systemd-boot, the kernel and initramfs
#   partition 2  jianmen-root (ext4)  the system, mounted read-only
#   partition 3  jianmen-data (ext4)  everything that changes: /etc/jianmen, /var/lib/jianmen,
#                                     /var/spool/jianmen, /var/log (bind mounts from /data)
#
# Nothing is mounted while building (mke2fs -d, mtools): no loop devices needed. First boot
# (jianmen-firstboot.service) takes a configuration from a seed disk labelled JIANMEN-CFG when one
# is attached, makes the TLS certificates, and shows the console's address, the first-login
# passwords and the service's sandbox score on the console. Needs root, mmdebstrap, mtools,
# dosfstools, fdisk, systemd-boot-efi (image/test.sh installs them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
deb=""
out=target/image/jianmen-x86_64.img
data_mib=1024
mirror=http://deb.debian.org/debian
while [ $# -gt 0 ]; do
  case "$1" in
    --deb) deb=$(realpath "$2"); shift 2 ;;
    --out) out=$2; shift 2 ;;
    --data-mib) data_mib=$2; shift 2 ;;
    --mirror) mirror=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -f "$deb" ] || { echo "usage: $0 --deb jianmen_….deb [--out FILE]" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "$0: needs root (mmdebstrap --mode=root, file ownership)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
out=$(realpath "$out")

work=$(mktemp -d /var/tmp/jianmen-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
data=$work/data

echo "== debian 12 root file system (mmdebstrap)" >&2
security=${mirror%/debian}/debian-security
# The .deb's own dependencies are fetched with the rest: the chroot has no name resolution.
deb_depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*//; s/ //g' | paste -sd, -)
mmdebstrap --mode=root --variant=minbase --format=directory \
  --include="systemd,systemd-sysv,systemd-resolved,udev,kmod,linux-image-amd64,openssl,iproute2,netbase,procps,$deb_depends" \
  --customize-hook="copy-in $deb /tmp" \
  --customize-hook="chroot \"\$1\" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends /tmp/${deb##*/}" \
  --customize-hook="rm -f \"\$1/tmp/${deb##*/}\"" \
  --customize-hook='chroot "$1" apt-get clean' \
  bookworm "$rootfs" "deb $mirror bookworm main" "deb $security bookworm-security main" >&2

echo "== appliance configuration" >&2
cp -a "$here/rootfs/." "$rootfs/"
echo jianmen > "$rootfs/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 jianmen\n::1 localhost\n' > "$rootfs/etc/hosts"
# Empty: systemd gives each boot of the read-only root a transient id.
: > "$rootfs/etc/machine-id"
# Name servers come by DHCP, through systemd-resolved (its files live in /run).
ln -sf ../run/systemd/resolve/stub-resolv.conf "$rootfs/etc/resolv.conf"
# No password logins on the appliance: it is administered through the console.
chroot "$rootfs" passwd --lock root >/dev/null
chroot "$rootfs" systemctl enable systemd-networkd.service systemd-resolved.service jianmen.service \
  jianmen-firstboot.service jianmen-welcome.service >/dev/null 2>&1
chroot "$rootfs" systemctl mask apt-daily.timer apt-daily-upgrade.timer \
  systemd-random-seed.service >/dev/null 2>&1 || true

# What changes at run time moves to the data partition; the root keeps empty mount points.
mkdir -p "$data/etc-jianmen" "$data/lib-jianmen" "$data/spool-jianmen" "$data/log"
cp -a "$rootfs/etc/jianmen/." "$data/etc-jianmen/"
install -m 0640 "$here/jianmen.toml" "$data/etc-jianmen/jianmen.toml"
cp -a "$rootfs/var/log/." "$data/log/"
for d in etc/jianmen var/lib/jianmen var/spool/jianmen var/log; do
  find "$rootfs/$d" -mindepth 1 -delete 2>/dev/null || true
done
jianmen_ids=$(chroot "$rootfs" id -u jianmen):$(chroot "$rootfs" id -g jianmen)
chown root:"${jianmen_ids#*:}" "$data/etc-jianmen" "$data/etc-jianmen/jianmen.toml"
chmod 0750 "$data/etc-jianmen"
chown "$jianmen_ids" "$data/lib-jianmen" "$data/spool-jianmen"
chmod 0750 "$data/lib-jianmen" "$data/spool-jianmen"
mkdir -p "$rootfs/data"

echo "== partitions" >&2
kernel=$(ls "$rootfs"/boot/vmlinuz-* | sort -V | tail -n 1)
initrd=$(ls "$rootfs"/boot/initrd.img-* | sort -V | tail -n 1)
root_uuid=6a1a0c7e-5f1b-4d2e-9a43-1f0e8b9b2d01
esp=$work/esp.img
esp_mib=$(( ($(stat -c %s "$kernel") + $(stat -c %s "$initrd")) / 1048576 + 32 ))
mkfs.fat -F 32 -n JIANMEN-EFI -C "$esp" $((esp_mib * 1024)) >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
mcopy -i "$esp" /usr/lib/systemd/boot/efi/systemd-bootx64.efi ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$esp" "$kernel" ::/vmlinuz
mcopy -i "$esp" "$initrd" ::/initrd.img
printf 'default jianmen.conf\ntimeout 0\n' > "$work/loader.conf"
printf 'title Jianmen mail security gateway\nlinux /vmlinuz\ninitrd /initrd.img\noptions root=PARTUUID=%s ro console=tty0 console=ttyS0,115200 quiet\n' \
  "$root_uuid" > "$work/jianmen.conf"
mcopy -i "$esp" "$work/loader.conf" ::/loader/loader.conf
mcopy -i "$esp" "$work/jianmen.conf" ::/loader/entries/jianmen.conf

root_mib=$(( $(du -sm "$rootfs" | cut -f1) * 5 / 4 + 128 ))
mke2fs -q -t ext4 -L jianmen-root -d "$rootfs" "$work/root.img" "${root_mib}M"
mke2fs -q -t ext4 -L jianmen-data -d "$data" "$work/data.img" "${data_mib}M"

rm -f "$out"
total=$((1 + esp_mib + root_mib + data_mib + 1))
truncate -s "${total}M" "$out"
sfdisk --quiet "$out" <<EOF
label: gpt
start=1MiB, size=${esp_mib}MiB, type=U, name=esp
size=${root_mib}MiB, type=L, name=jianmen-root, uuid=$root_uuid
size=${data_mib}MiB, type=L, name=jianmen-data
EOF
offset=1
for part in "$esp" "$work/root.img" "$work/data.img"; do
  dd if="$part" of="$out" bs=1M seek="$offset" conv=notrunc,sparse status=none
  offset=$((offset + $(stat -c %s "$part") / 1048576))
done
echo "$(du -h --apparent-size "$out" | cut -f1) image ($(du -h "$out" | cut -f1) on disk)" >&2
echo "$out"
