#!/usr/bin/env bash
# Make sure a Docker engine answers, installing and starting one on a Debian/Ubuntu host if needed,
# together with the tools the container tests use (docker-compose, docker-registry, debootstrap).
#
# Why: CI machines (and fresh dev VMs) may have no engine, or one that is installed but not running
# because there is no systemd. This starts dockerd in the background with its log in a file, and
# waits until `docker info` answers. It never stops an engine it did not start.
#
# Usage: scripts/docker-engine.sh            # ensure the engine (root needed to install/start)
# Environment:
#   DOCKERD_LOG          where dockerd logs (default: /var/log/byoc-dockerd.log)
#   BYOC_NO_INSTALL=1    fail instead of apt-get installing missing packages
set -euo pipefail

LOG="${DOCKERD_LOG:-/var/log/byoc-dockerd.log}"

say() { echo "docker-engine: $*" >&2; }
die() { say "$*"; exit 1; }

engine_answers() { timeout 20 docker info >/dev/null 2>&1; }

# What the build and the container tests need, by command (an engine from docker-ce or Docker
# Desktop counts: docker.io is only installed when there is no dockerd/docker at all).
missing=()
if ! command -v docker >/dev/null || { ! command -v dockerd >/dev/null && ! engine_answers; }; then
    missing+=(docker.io)
fi
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
    [[ "${BYOC_NO_INSTALL:-0}" != 1 ]] || die "missing packages: ${missing[*]} (BYOC_NO_INSTALL=1 forbids installing)"
    command -v apt-get >/dev/null || die "missing: ${missing[*]}, and no apt-get to install them; install them by hand"
    [[ $(id -u) -eq 0 ]] || die "missing packages: ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

if engine_answers; then
    say "engine running ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
    exit 0
fi
command -v dockerd >/dev/null || die "no Docker engine answers and dockerd is not installed; start Docker"
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
