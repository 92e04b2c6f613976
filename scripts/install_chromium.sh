#!/usr/bin/env bash
# Chromium from the distribution's packages, for the browser tests (portal pages, map
# reports). Playwright drives it through executable_path; it never downloads a browser.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "error: chromium is not installed; run 'sudo apt-get install -y chromium' (the browser tests need it)" >&2
  exit 1
fi
echo "installing chromium from the distribution's packages ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null
