#!/usr/bin/env bash
# Builds the local nginx-lua + memcached image from Debian's packages, for machines
# that reach Debian's archive but no container registry (docker pull fails there).
# The archive is read from this machine's apt sources: no host name is written here.
set -euo pipefail

image=${GRAY_DEBIAN_IMAGE:-gray-router/debian-nginx-lua:local}
suite=$( . /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
packages=nginx-core,libnginx-mod-http-lua,lua-resty-core,lua-resty-lrucache,lua-nginx-memcached,lua-cjson,memcached,nutcracker,bash

# An image built from an older package list is rebuilt: the check asks the image's own dpkg.
if [ "${1:-}" != "--force" ] && docker image inspect "$image" >/dev/null 2>&1 \
   && docker run --rm --network none "$image" dpkg -s ${packages//,/ } >/dev/null 2>&1; then
  echo "image $image is already there with every package (pass --force to rebuild)"
  exit 0
fi

# deb822 sources first (Debian 12+), then the classic one-line format.
mirror=$( { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs: *\([^ ]*\).*/\1/p'
            cat /etc/apt/sources.list 2>/dev/null | sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) .*/\2/p'
          } | grep -v -e security | head -n 1 || true)
[ -n "$mirror" ] || { echo "no Debian mirror found in /etc/apt/sources.list*" >&2; exit 1; }

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap $suite from the machine's apt mirror into $rootfs"
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
  || { tail -n 20 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"
# Debian's package starts nginx and memcached from maintainer scripts only; the image runs
# whatever the harness asks for, so the stock site and its logs go.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/etc/nginx/sites-enabled/*
tar -C "$rootfs" -c . | docker import \
  --change 'LABEL org.opencontainers.image.description="nginx + lua-nginx-module + lua-resty-memcached + memcached, from Debian packages"' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$image" >/dev/null
echo "built $image"
