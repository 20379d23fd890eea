#!/usr/bin/env bash
# Installs what the router's build and test harness need on a Debian (or Ubuntu) machine, then builds:
#   Debian packages: nginx + lua-nginx-module + lua-resty-memcached + lua-cjson + memcached + nutcracker
#                    (twemproxy), tini (native runtime), lua-check (luacheck, for npm run lint),
#                    luarocks (the rock: luarocks make, npm run release),
#                    debootstrap + a Docker engine (containers runtime), wrk (benchmarks),
#                    chromium (the status page's test and screenshot, driven by playwright-core: npm
#                    installs no browser of its own);
#   a Docker engine, started if none answers;
#   the local nginx-lua image (docker/debian/build.sh), for machines that reach no registry;
#   npm packages (npm ci), then npm run build.
# Safe to run again: each step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
step() { printf '== %s\n' "$*"; }

packages=(nginx-core libnginx-mod-http-lua lua-resty-core lua-resty-lrucache lua-nginx-memcached lua-cjson memcached
          nutcracker lua-check luarocks wrk tini debootstrap docker.io netcat-openbsd ca-certificates bsdutils chromium)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  step "apt-get install ${missing[*]}"
  # The packages' own services (nginx on :80, memcached on :11211) are not wanted: tests start their own.
  printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
  as_root chmod +x /usr/sbin/policy-rc.d
  trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  as_root rm -f /usr/sbin/policy-rc.d
  trap - EXIT
fi

if ! docker info >/dev/null 2>&1; then
  step "starting a Docker engine (dockerd)"
  as_root sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not come up; see /var/log/dockerd.log" >&2; tail -n 20 /var/log/dockerd.log >&2; exit 1; }
fi

step "local image (docker/debian/build.sh)"
as_root bash docker/debian/build.sh

step "npm ci"
npm ci --no-audit --no-fund
step "npm run build"
npm run build
