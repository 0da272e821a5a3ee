#!/bin/sh
# System packages FRGD Studio needs on a fresh Debian/Ubuntu desktop: python3-venv and the libraries of Qt's X11
# (xcb) platform plugin. Installs only what is missing (apt-get, through sudo unless run as root); the package list is
# editor/frgd_studio/system_check.py (one source). Elsewhere it prints what to look for and succeeds.
set -e
cd "$(dirname "$0")/.."
pkgs=$(python3 editor/frgd_studio/system_check.py --apt-packages)
if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "system_deps: not Debian/Ubuntu; install python3's venv module and Qt 6's xcb libraries: $pkgs" >&2
  exit 0
fi
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "system_deps: installing$missing" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing
