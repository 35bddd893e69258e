#!/usr/bin/env bash
# System packages the test suite starts privately: redis-server (real Redis for cache, accounting
# and limits tests), prometheus (scrapes a router to check every Grafana panel query,
# tests/grafana/) and chromium (a real browser calling the gateway across origins,
# tests/router/test_cors_browser.py). Installed from Debian's packages when missing and we may
# (root, apt-get); when everything is present this only looks the commands up.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${missing[*]}" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "please install: ${missing[*]} (Debian/Ubuntu: apt-get install ${missing[*]})" >&2
  exit 1
fi
