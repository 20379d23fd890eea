#!/usr/bin/env bash
# Cuts a release into one folder (default release/): builds, packs the rock, packs the npm tarball.
#   gray-router-VERSION.tgz            npm package: the CLI, dist/lua, dist/nginx (npm install -g ./…tgz)
#   gray-router-VERSION-1.all.rock     LuaRocks binary rock of the pure-Lua gray.* modules (luarocks install ./…rock)
#   gray-router-VERSION-1.rockspec     its rockspec; dist.ini for OPM (opm build in a built checkout)
#   SHA256SUMS
# Works offline: nothing is fetched or uploaded. GRAY_RELEASE_SKIP_BUILD=1 packs the existing dist/ (tests).
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(node -p 'require("./package.json").version')
rockspec="gray-router-${version}-1.rockspec"
[ -f "$rockspec" ] || { echo "release: no $rockspec for package.json version $version" >&2; exit 1; }
grep -q "^version = ${version}\$" dist.ini || { echo "release: dist.ini's version is not $version" >&2; exit 1; }

if [ "${GRAY_RELEASE_SKIP_BUILD:-}" != 1 ]; then npm run build; fi
[ -f dist/lua/gray/router.lua ] || { echo "release: no dist/lua/gray/router.lua: run npm run build" >&2; exit 1; }

out="${1:-release}"
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out/gray-router-${version}".tgz "$out/gray-router-${version}"-1.* "$out/dist.ini" "$out/SHA256SUMS"

# The build just ran: --ignore-scripts keeps prepack from building a second time.
npm pack --ignore-scripts --loglevel=warn --pack-destination "$out" >/dev/null

# --pack-binary-rock installs into a temporary tree and packs that (pure Lua: an .all.rock);
# --deps-mode=none as lua-resty-memcached comes with OpenResty (or Debian's lua-nginx-memcached).
luarocks make --deps-mode=none --pack-binary-rock "$rockspec" >/dev/null
mv "gray-router-${version}-1.all.rock" "$out/"
cp "$rockspec" dist.ini "$out/"

(cd "$out" && sha256sum "gray-router-${version}.tgz" "gray-router-${version}-1.all.rock" "$rockspec" dist.ini >SHA256SUMS)
echo "release $version in $out:"
ls -1 "$out"
