#!/usr/bin/env bash
# Vendors the console's prebuilt UI libraries from npm into webui/pages/vendor/, pinned by
# version and by the registry's sha512 integrity, so that building and running Jianmen needs
# no Node. Run it (with npm on the PATH) only to change a version; commit what it writes.
# The console test checks the committed files against SHA256SUMS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/../pages/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# name version sha512-integrity file-in-package vendored-name (its LICENSE, NOTICE and
# licenses/ of bundled code are kept beside it)
libs=(
  "echarts 6.1.0 sha512-q0yaFPggC9FUdsWH4blavRWFmxdrIodbkoKNAjJudAI6CA9gNPxHtV2RcZNEepZVlk4yvBYkOkbk6HIVpIyHZA== dist/echarts.min.js echarts.min.js"
)

mkdir -p "$out"
for lib in "${libs[@]}"; do
  read -r name version integrity file vendored <<<"$lib"
  (cd "$work" && npm pack --silent "$name@$version" >/dev/null)
  tarball="$work/$name-$version.tgz"
  got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [ "$got" != "$integrity" ]; then
    echo "$name@$version: integrity $got, expected $integrity" >&2
    exit 1
  fi
  tar -xzf "$tarball" -C "$work" package
  cp "$work/package/$file" "$out/$vendored"
  cp "$work/package/LICENSE" "$out/$name.LICENSE"
  [ -f "$work/package/NOTICE" ] && cp "$work/package/NOTICE" "$out/$name.NOTICE"
  for extra in "$work"/package/licenses/*; do
    [ -e "$extra" ] && cp "$extra" "$out/$name.$(basename "$extra")"
  done
  rm -rf "$work/package"
done
(cd "$out" && sha256sum -- *.js *.LICENSE* *.NOTICE > SHA256SUMS)
echo "vendored into $out:"
cat "$out/SHA256SUMS"
