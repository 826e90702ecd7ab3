#!/usr/bin/env bash
# Make sure a Docker engine answers, installing and starting one on a Debian/Ubuntu host if needed.
#
# Why: CI machines (and fresh dev VMs) may have no engine, or one that is installed but not running
# because there is no systemd. This starts dockerd in the background with its log in a file, and
# waits until `docker info` answers. It never stops an engine it did not start.
#
# Usage: scripts/docker-engine.sh            # ensure the engine (root needed to install/start)
# Environment:
#   DOCKERD_LOG          where dockerd logs (default: /var/log/byoc-dockerd.log)
#   BYOC_NO_INSTALL=1    fail instead of apt-get installing missing packages
#   BYOC_APT_PACKAGES    packages to install when docker is absent
#                        (default: docker.io docker-compose docker-registry debootstrap)
set -euo pipefail

LOG="${DOCKERD_LOG:-/var/log/byoc-dockerd.log}"
PACKAGES="${BYOC_APT_PACKAGES:-docker.io docker-compose docker-registry debootstrap}"

say() { echo "docker-engine: $*" >&2; }
die() { say "$*"; exit 1; }

engine_answers() { timeout 20 docker info >/dev/null 2>&1; }

if command -v docker >/dev/null && engine_answers; then
    say "engine already running ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
    exit 0
fi

missing=()
for pkg in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    [[ "${BYOC_NO_INSTALL:-0}" != 1 ]] || die "missing packages: ${missing[*]} (BYOC_NO_INSTALL=1 forbids installing)"
    [[ $(id -u) -eq 0 ]] || die "missing packages: ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}"
    command -v apt-get >/dev/null || die "missing packages: ${missing[*]}, and no apt-get to install them; install Docker by hand"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v dockerd >/dev/null || die "dockerd not found after installing; install Docker by hand"
[[ $(id -u) -eq 0 ]] || die "the engine is not running and starting dockerd needs root (sudo $0)"

if ! pgrep -x dockerd >/dev/null; then
    say "starting dockerd (log: $LOG)"
    # setsid: dockerd must outlive this script and the CI step's process group.
    setsid nohup dockerd >>"$LOG" 2>&1 </dev/null &
fi

for _ in $(seq 1 60); do
    if engine_answers; then
        say "engine ready ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
        exit 0
    fi
    sleep 1
done
tail -n 30 "$LOG" >&2 || true
die "dockerd did not answer within 60 s (see $LOG)"
