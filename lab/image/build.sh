#!/usr/bin/env bash
# Builds the lab image from Debian packages (no registry is reachable here): debootstrap, then docker import.
# Usage: build.sh IMAGE:TAG WORKDIR
set -euo pipefail
image=$1 work=$2
here=$(cd "$(dirname "$0")" && pwd)
include=$(grep -Ev '^\s*(#|$)' "$here/packages.txt" | paste -sd, -)
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
rootfs="$work/rootfs"
rm -rf "$rootfs"
mkdir -p "$rootfs"
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include="$include" bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 20 "$work/debootstrap.log" >&2
  echo "lab: ERROR: debootstrap from $mirror failed (log: $work/debootstrap.log)" >&2
  exit 1
}
# The packages' default cluster and caches are not part of the lab: each service initialises its own data.
rm -rf "$rootfs"/var/lib/postgresql/15/main "$rootfs"/etc/postgresql/15/main \
       "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change "LABEL org.stackops.lab.image=$image" \
  - "$image" >/dev/null
