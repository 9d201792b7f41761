#!/usr/bin/env bash
# Install the system packages the Python environments cannot bring, from Debian:
# - `chromium`, the headless browser of the UI's real-browser test (Playwright drives it; we
#   never run `playwright install`, whose download fails on these machines);
# - `haproxy`, the load balancer in front of several API processes (API_WORKERS >= 2,
#   service/fleet.py);
# - `redis-server`, the Celery broker when AIRFLOW_EXECUTOR=celery (ops/redis.py starts our
#   own server under VAR_DIR; the package's system service is never started by us).
# Idempotent and fast when everything is present: one file test per package, no apt call.
#   scripts/system_deps.sh
set -euo pipefail

CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
HAPROXY=/usr/sbin/haproxy
REDIS_SERVER="${REDIS_SERVER_PATH:-/usr/bin/redis-server}"

missing=()
[ -x "$CHROMIUM" ] || missing+=(chromium)
[ -x "$HAPROXY" ] || command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
[ -x "$REDIS_SERVER" ] || missing+=(redis-server)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "system_deps: ${missing[*]} missing and this is not a Debian-like system;" \
    "install them yourself (chromium: the browser test; haproxy: API_WORKERS >= 2;" \
    "redis-server: AIRFLOW_EXECUTOR=celery)" >&2
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
# `apt-get update` only when the package lists do not know a package yet (fresh image):
# it takes tens of seconds and needs the network, so skip it whenever we can.
for package in "${missing[@]}"; do
  if ! apt-cache show "$package" >/dev/null 2>&1; then
    echo "system_deps: refreshing the package lists" >&2
    "${SUDO[@]}" apt-get update -qq
    break
  fi
done
# redis-server's postinst would start a system-wide Redis on port 6379 (invoke-rc.d): we start
# our own, so forbid service starts during the install when nothing forbids them already.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
  "${SUDO[@]}" chmod 755 "$POLICY"
  trap '"${SUDO[@]}" rm -f "$POLICY"' EXIT
fi
install() { "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
echo "system_deps: installing ${missing[*]} (chromium: about 40 s)" >&2
if ! install; then
  # Stale package lists name versions the mirror no longer has: refresh once and retry.
  echo "system_deps: install failed; refreshing the package lists and retrying" >&2
  "${SUDO[@]}" apt-get update -qq
  install
fi
[ -x "$CHROMIUM" ] || { echo "system_deps: chromium installed but $CHROMIUM is missing" >&2; exit 1; }
command -v haproxy >/dev/null 2>&1 || [ -x "$HAPROXY" ] || { echo "system_deps: haproxy is missing after the install" >&2; exit 1; }
[ -x "$REDIS_SERVER" ] || { echo "system_deps: installed, but $REDIS_SERVER is missing" >&2; exit 1; }
