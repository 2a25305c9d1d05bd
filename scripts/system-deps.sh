#!/usr/bin/env bash
# Installs the system libraries Qt loads even offscreen, only when one is missing and we may (root + apt).
set -euo pipefail
need=()
for lib in libEGL.so.1 libfontconfig.so.1 libxkbcommon.so.0 libdbus-1.so.3 libGL.so.1 libglib-2.0.so.0; do
  ldconfig -p 2>/dev/null | grep -q "$lib" || need+=("$lib")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "medview: missing system libraries for Qt: ${need[*]} (install them with your package manager)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends libegl1 libgl1 libfontconfig1 libxkbcommon0 libdbus-1-3 libglib2.0-0 >/dev/null
