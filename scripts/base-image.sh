#!/usr/bin/env bash
# Builds canon's local Debian base image without any registry: debootstrap Debian bookworm from
# Debian's mirror, add the Docker client binary, and `docker import` the tree. The image is tagged
# canon-base:<suite>-<hash>, where the hash covers everything that shapes its content (suite,
# variant, package list, this recipe's revision), and is reused when that tag already exists.
#
# Usage: scripts/base-image.sh            prints the tag on stdout (logs on stderr)
#        scripts/base-image.sh --tag      prints the tag it would build, builds nothing
# Env:   CANON_DEBIAN_MIRROR (default http://deb.debian.org/debian)
#
# The canon images use it as RUNTIME_IMAGE when no registry is reachable:
#   docker build --build-arg RUNTIME_IMAGE="$(scripts/base-image.sh)" --build-arg BINARIES=prebuilt ...
set -euo pipefail

suite=bookworm
variant=minbase
mirror="${CANON_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# What the canon binaries and the docker runner need at run time: TLS roots, git for mirrors and
# checkouts, libssl3 for libgit2's https transport. The Docker client comes from docker.io below.
packages=(ca-certificates git libssl3)
# Bump when the steps below change what ends up in the image.
recipe_revision=1

key="$(printf '%s\n' "$suite" "$variant" "${packages[@]}" "docker-client-from:docker.io" "$recipe_revision" \
  | sha256sum | cut -c1-12)"
tag="canon-base:${suite}-${key}"

if [ "${1:-}" = "--tag" ]; then
  echo "$tag"
  exit 0
fi

log() { echo "$*" >&2; }

if ! command -v docker >/dev/null 2>&1; then
  log "error: the docker CLI is missing; canon's images are built with the local Docker engine"
  exit 1
fi
if docker image inspect "$tag" >/dev/null 2>&1; then
  log "base image $tag is cached"
  echo "$tag"
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo)
fi
if ! command -v debootstrap >/dev/null 2>&1 && [ ! -x /usr/sbin/debootstrap ]; then
  log "+ apt-get install debootstrap"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi
debootstrap_bin="$(command -v debootstrap || echo /usr/sbin/debootstrap)"

work="$(mktemp -d "${TMPDIR:-/tmp}/canon-base.XXXXXX")"
root="$work/rootfs"
cleanup() { "${sudo[@]}" rm -rf "$work"; }
trap cleanup EXIT

include="$(IFS=,; echo "${packages[*]}")"
log "+ debootstrap --variant=$variant --include=$include $suite $root $mirror"
"${sudo[@]}" "$debootstrap_bin" --variant="$variant" --include="$include" "$suite" "$root" "$mirror" >&2

# Only the Docker client is needed (the engine is the host's, through its socket): fetch the
# docker.io package with the image's own apt and keep /usr/bin/docker alone.
"${sudo[@]}" cp /etc/resolv.conf "$root/etc/resolv.conf"
log "+ chroot $root apt-get download docker.io"
"${sudo[@]}" chroot "$root" sh -ec '
  apt-get update -qq
  cd /tmp
  apt-get download -qq docker.io
  dpkg-deb --fsys-tarfile docker.io_*.deb | tar -x -C / ./usr/bin/docker
  rm -f docker.io_*.deb
  docker --version
' >&2

# Leave nothing run-specific or bulky behind.
"${sudo[@]}" sh -ec "
  cd '$root'
  rm -rf var/lib/apt/lists/* var/cache/apt/*.bin var/cache/apt/archives/*.deb var/log/* tmp/*
  rm -rf usr/share/doc/* usr/share/man/* usr/share/info/* usr/share/locale/*
  : > etc/resolv.conf
"

log "+ docker import $tag"
"${sudo[@]}" tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change "LABEL org.opencontainers.image.title=canon-base org.opencontainers.image.description=Debian-${suite}-${variant}+${include}+docker-client" \
  - "$tag" >&2
echo "$tag"
