#!/usr/bin/env bash
# Builds a lab image from Debian packages (no registry is reachable here): debootstrap, then docker import.
# Usage: build.sh IMAGE:TAG WORKDIR SUITE   (SUITE: bookworm, from packages.txt, or trixie, from packages-trixie.txt)
set -euo pipefail
image=$1 work=$2 suite=${3:-bookworm}
here=$(cd "$(dirname "$0")" && pwd)
list="$here/packages.txt"
[ "$suite" = bookworm ] || list="$here/packages-$suite.txt"
include=$(grep -Ev '^\s*(#|$)' "$list" | paste -sd, -)
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
rootfs="$work/rootfs-$suite"
rm -rf "$rootfs"
mkdir -p "$rootfs"
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include="$include" "$suite" "$rootfs" "$mirror" >"$work/debootstrap-$suite.log" 2>&1 || {
  tail -n 20 "$work/debootstrap-$suite.log" >&2
  echo "lab: ERROR: debootstrap of $suite from $mirror failed (log: $work/debootstrap-$suite.log)" >&2
  exit 1
}
# The suite's one PostgreSQL major version (15 in bookworm, 17 in trixie) puts its programs on the PATH.
for pgbin in "$rootfs"/usr/lib/postgresql/*/bin; do pgbin=${pgbin#"$rootfs"/}; break; done
# The packages' default cluster and caches are not part of the lab: each service initialises its own data.
rm -rf "$rootfs"/var/lib/postgresql/*/main "$rootfs"/etc/postgresql/*/main \
       "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import \
  --change "ENV PATH=/$pgbin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change 'ENV LANG=C.UTF-8' \
  --change "LABEL org.stackops.lab.image=$image" \
  - "$image" >/dev/null
