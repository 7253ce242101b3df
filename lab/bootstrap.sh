#!/usr/bin/env bash
# Installs what the lab needs on this machine, and nothing that is already there:
# Docker Engine, the Compose v2 CLI plugin, sshd, the PostgreSQL/Redis clients, debootstrap,
# and the managed-node Python libraries (psycopg2, redis) for /usr/bin/python3.
set -euo pipefail

COMPOSE_PLUGIN=/usr/libexec/docker/cli-plugins/docker-compose
PACKAGES=(docker.io containerd runc openssh-server openssh-client postgresql-client redis-tools
          debootstrap python3-psycopg2 python3-redis curl ca-certificates hyperfine time shellcheck
          openssl prometheus  # TLS certificates for nginx; a real Prometheus for the targets-up check
          nginx-light  # nginx on the host, for nginx_config's host mode (never started as a service)
          docker-compose  # Compose v1 1.29 (bookworm): only to prove the modules refuse it
          docker-registry)  # a registry on loopback for compose_images' pull tests (never started as a service)

say() { printf 'lab: %s\n' "$*"; }
die() { printf 'lab: ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "the lab installs system packages and runs dockerd: run it as root."

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed: the Debian package mirror must be reachable."
  # Packages must not start services (nginx would try to bind *:80 beside the lab's nginx).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed; run it by hand to see why."
fi

# The machine's docker CLI may be newer than Engine 20.10: both negotiate the API version.
compose_ok() { [ -x "$COMPOSE_PLUGIN" ] && docker compose version --short 2>/dev/null | grep -Eq '^v?2\.'; }
if ! compose_ok; then
  # bookworm packages only Compose v1 (1.29, end of life); trixie's docker-compose is v2, a static binary.
  # A separate sources list AND lists/cache dirs keep the machine's bookworm lists untouched.
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/deb"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" >"$work/sources.list"
  apt_trixie=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
              -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root -qq)
  say "fetching Compose v2 (Debian trixie's docker-compose package)"
  apt-get "${apt_trixie[@]}" update || die "could not read trixie's package lists from $mirror."
  (cd "$work/deb" && apt-get "${apt_trixie[@]}" download docker-compose) \
    || die "could not download trixie's docker-compose package from $mirror."
  dpkg-deb -x "$work"/deb/docker-compose_*.deb "$work/root"
  install -D -m 0755 "$work/root$COMPOSE_PLUGIN" "$COMPOSE_PLUGIN"
  compose_ok || die "Compose v2 was installed at $COMPOSE_PLUGIN but 'docker compose version' does not answer v2."
fi
say "host packages ready (compose $(docker compose version --short))"
