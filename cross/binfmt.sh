# Sourced: lets the kernel run one foreign architecture's programs through the static qemu-user of
# cross/setup-qemu-user-10.sh, so that a root file system of that architecture can be entered with
# chroot and its package scripts run. The entry carries flag F (the interpreter is opened at
# registration, so it need not exist inside the root) and Debian's name qemu-<arch>, the name
# mmdebstrap looks for. An entry of that name with flag F is kept and used; one without (which
# would need qemu inside the root) is replaced while the test runs and removed after it
# (systemd-binfmt registers Debian's again at boot). Needs root.
BINFMT=/proc/sys/fs/binfmt_misc
BINFMT_OURS=()

# binfmt_register <arch: aarch64|loongarch64> <qemu directory>
binfmt_register() {
  local arch=$1 dir=$2 entry magic mask
  entry=$BINFMT/qemu-$arch
  [ -e "$BINFMT/register" ] || mount -t binfmt_misc binfmt_misc "$BINFMT"
  if [ -e "$entry" ]; then
    grep -q '^flags: [A-Z]*F' "$entry" && return 0
    echo -1 >"$entry"
  fi
  # Debian's line is :name:M::magic:mask:interpreter:flags; its magic and mask are kept.
  IFS=: read -r _ _ _ _ magic mask _ <"$dir/qemu-$arch.conf"
  printf ':qemu-%s:M::%s:%s:%s:F\n' "$arch" "$magic" "$mask" "$dir/qemu-$arch" >"$BINFMT/register"
  BINFMT_OURS+=("$entry")
}

# Removes the entries binfmt_register made.
binfmt_unregister() {
  local entry
  for entry in "${BINFMT_OURS[@]}"; do
    [ -e "$entry" ] && echo -1 >"$entry"
  done
  BINFMT_OURS=()
}
