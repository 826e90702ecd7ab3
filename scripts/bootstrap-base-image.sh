#!/usr/bin/env bash
# Build a Debian bookworm base image with Python 3 WITHOUT pulling from any image registry.
#
# Why: in an air-gapped network (or a CI machine with no route to Docker Hub) `docker build`
# cannot pull python:3.11-slim-bookworm. debootstrap only needs a Debian package mirror, so it
# can build an equivalent base locally. Pass the result to the Dockerfile:
#
#     scripts/bootstrap-base-image.sh                      # -> byoc-base:bookworm
#     docker build --network host --build-arg BASE_IMAGE=byoc-base:bookworm -t byoc-sklearn .
#
# The host's CA bundle is copied into the image so that pip inside `docker build` trusts the
# same TLS-intercepting proxy the host trusts (if any). Requires root, debootstrap and docker.
#
# Usage: scripts/bootstrap-base-image.sh [TAG]
#   TAG            image tag to create (default: byoc-base:bookworm)
# Environment:
#   DEBIAN_MIRROR  package mirror (default: http://deb.debian.org/debian)
#   SUITE          Debian suite (default: bookworm)
#   FORCE=1        rebuild even when TAG already exists
set -euo pipefail

TAG="${1:-byoc-base:bookworm}"
SUITE="${SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# python3-venv brings ensurepip (pip for the venv); the system-wide python3-pip is not needed.
PACKAGES="python3,python3-venv,ca-certificates"
HOST_CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt"

die() { echo "bootstrap-base-image: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap creates device nodes and chroots)"
command -v debootstrap >/dev/null || die "debootstrap is not installed: apt-get install -y debootstrap"
command -v docker >/dev/null || die "docker CLI is not installed: apt-get install -y docker.io"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (is dockerd running? try scripts/docker-engine.sh)"

if [[ "${FORCE:-0}" != 1 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "bootstrap-base-image: $TAG already exists (FORCE=1 rebuilds it)"
    exit 0
fi

workdir="$(mktemp -d /tmp/byoc-rootfs.XXXXXX)"
cleanup() {
    # debootstrap may leave /proc or /sys mounted inside the rootfs when it fails half-way.
    for m in proc sys dev/pts dev; do
        mountpoint -q "$workdir/rootfs/$m" 2>/dev/null && umount -l "$workdir/rootfs/$m" || true
    done
    rm -rf "$workdir"
}
trap cleanup EXIT

rootfs="$workdir/rootfs"
echo "bootstrap-base-image: debootstrap $SUITE ($MIRROR) into $rootfs"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR"

# Trust what the host trusts: outbound TLS may go through a proxy whose CA is only in the host bundle.
if [[ -s "$HOST_CA_BUNDLE" ]]; then
    cp "$HOST_CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
fi

# Slim the image the way the official slim images are: no apt lists, caches, docs or man pages.
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
       "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
       "$rootfs"/var/log/*.log "$rootfs"/tmp/*
# The image gets its own resolv.conf/hosts from Docker at run time.
: > "$rootfs/etc/resolv.conf"

echo "bootstrap-base-image: importing as $TAG"
tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/usr/bin/python3"]' \
    - "$TAG"
docker image inspect --format 'bootstrap-base-image: built {{.RepoTags}} ({{.Size}} bytes)' "$TAG"
