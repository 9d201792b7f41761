#!/usr/bin/env bash
# Install the system packages the Python environments cannot bring: Debian's `chromium`,
# the headless browser of the UI's real-browser test (Playwright drives it; we never run
# `playwright install`, whose download fails on these machines), and `haproxy`, the load
# balancer in front of several API processes (API_WORKERS >= 2, service/fleet.py).
# Idempotent and fast when everything is present: file tests only, no apt call.
#   scripts/system_deps.sh
set -euo pipefail

CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
HAPROXY=/usr/sbin/haproxy

missing=()
[ -x "$CHROMIUM" ] || missing+=(chromium)
[ -x "$HAPROXY" ] || command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "system_deps: ${missing[*]} missing and this is not a Debian-like system;" \
    "install them yourself (chromium: the browser test; haproxy: API_WORKERS >= 2)" >&2
  exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "system_deps: installing ${missing[*]} needs root (or sudo)" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
# `apt-get update` only when the package lists do not know them yet (fresh image): it takes
# tens of seconds and needs the network, so skip it whenever we can.
for package in "${missing[@]}"; do
  if ! apt-cache show "$package" >/dev/null 2>&1; then
    echo "system_deps: refreshing the package lists" >&2
    "${SUDO[@]}" apt-get update -qq
    break
  fi
done
install() { "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
echo "system_deps: installing ${missing[*]} (chromium takes about 40 s)" >&2
if ! install; then
  # Stale package lists name versions the mirror no longer has: refresh once and retry.
  echo "system_deps: install failed; refreshing the package lists and retrying" >&2
  "${SUDO[@]}" apt-get update -qq
  install
fi
[ -x "$CHROMIUM" ] || { echo "system_deps: chromium installed but $CHROMIUM is missing" >&2; exit 1; }
command -v haproxy >/dev/null 2>&1 || [ -x "$HAPROXY" ] || { echo "system_deps: haproxy is missing after the install" >&2; exit 1; }
