#!/usr/bin/env bash
# Debian's headless Chromium and its ChromeDriver, for the tests that look at what a person reads
# (the AutoML report). Idempotent: does nothing when both are already on PATH. Needs root (CI
# and these machines run as root); elsewhere, install the packages `chromium` and
# `chromium-driver` yourself.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "install-browser: chromium and chromedriver are missing; install Debian's chromium and" \
         "chromium-driver packages (needs root)" >&2
    exit 1
fi
echo "install-browser: installing chromium chromium-driver"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
command -v chromium && command -v chromedriver
