#!/usr/bin/env bash
# Debian packages the GUI tests need on a fresh machine: a virtual X server for Qt's xcb platform
# and vispy's OpenGL (Mesa llvmpipe), and two xcb libraries the Qt xcb plugin loads (its error
# message wrongly blames libxcb-cursor0). Installs only what is missing.
set -euo pipefail
pkgs=(xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libgl1-mesa-dri libegl1 libxkbcommon-x11-0)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
if ! command -v apt-get >/dev/null 2>&1; then
    echo "[setup] not a Debian/Ubuntu machine: install ${missing[*]} (or equivalents) yourself; OpenGL tests will skip" >&2
    exit 0
fi
echo "[setup] installing system packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
