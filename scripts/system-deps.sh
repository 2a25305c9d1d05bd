#!/usr/bin/env bash
# Installs the system libraries Qt loads (offscreen, and its xcb plugin on an X desktop), and the PACS the
# network tests run against (Orthanc with its DICOMweb plugin, dcmtk), only when one is missing and we may
# (root + apt). Waits for another apt or dpkg run to finish instead of failing on its lock.
set -euo pipefail
need=()
for lib in libEGL.so.1 libfontconfig.so.1 libxkbcommon.so.0 libdbus-1.so.3 libGL.so.1 libglib-2.0.so.0 \
           libxcb-cursor.so.0 libxcb-icccm.so.4 libxcb-keysyms.so.1 libxcb-image.so.0 libxcb-randr.so.0 \
           libxcb-render-util.so.0 libxcb-shape.so.0 libxcb-xinerama.so.0 libxcb-xkb.so.1 libxkbcommon-x11.so.0; do
  ldconfig -p 2>/dev/null | grep -q "$lib" || need+=("$lib")
done
pacs=()
[ -x /usr/sbin/Orthanc ] || command -v Orthanc >/dev/null || pacs+=(orthanc)
ls /usr/share/orthanc/plugins/libOrthancDicomWeb*.so* >/dev/null 2>&1 || pacs+=(orthanc-dicomweb)
command -v getscu >/dev/null || pacs+=(dcmtk)
[ ${#need[@]} -eq 0 ] && [ ${#pacs[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "medview: missing system packages: ${need[*]} ${pacs[*]} (install them with your package manager;" \
       "the PACS tests skip without Orthanc)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
lock=(-o DPkg::Lock::Timeout=600)  # another apt-get or unattended-upgrades may hold the lock for a while
qt=()
[ ${#need[@]} -eq 0 ] || qt=(libegl1 libgl1 libfontconfig1 libxkbcommon0 libdbus-1-3 libglib2.0-0
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0 libxcb-render-util0 libxcb-shape0
  libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0)
apt-get "${lock[@]}" update -qq
apt-get "${lock[@]}" install -y -qq --no-install-recommends "${qt[@]}" "${pacs[@]}" >/dev/null
