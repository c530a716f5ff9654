#!/usr/bin/env bash
# Builds canon's two images on this machine, offline: no registry, no base image, no package
# download. Both are `FROM scratch` (see Dockerfile) plus a root filesystem staged here from the
# release binaries and the files of this host (any Linux with Docker, ldd and a static busybox;
# on NixOS the flake's canon-plugin-image and canon-listener-image outputs build the same):
#
#   canon-plugin    /bin/canon-plugin, the Docker client (the host's `docker`), busybox for the
#                   `sh` the custom stage and command runner need, the shared libraries `ldd`
#                   names, CA certificates. No git CLI:
#                   every git transfer is libgit2 inside the binary. Runs as root (Drone's
#                   workspace is root's), talks to the host's engine through its socket.
#   canon-listener  /bin/canon-listener, its shared libraries, CA certificates, the user canon
#                   (10001) owning /var/lib/canon. No shell.
#
# Usage: scripts/build-images.sh         builds canon-plugin and canon-listener, tags each with
#                                        this release's version (Cargo.toml) and `latest`, prints
#                                        "<image> <bytes> <MB>" for the first tag on stdout
# Env:   CANON_IMAGE_TAG     the tags instead (space-separated; e.g. a commit for CI)
#        CANON_PLUGIN_BIN, CANON_LISTENER_BIN
#                            release binaries built elsewhere (default: cargo build --release
#                            --locked here)
#        CANON_IMAGES_TARGET_DIR  cargo's target dir for that build (default $CARGO_TARGET_DIR,
#                            else target/)
#        CANON_DOCKER_CLIENT the Docker client to ship (default: `docker` on PATH)
#        CANON_BUSYBOX       a statically linked busybox (default: `busybox` on PATH)
#        CANON_CA_BUNDLE     the CA certificates (default: the first of the usual bundle paths of
#                            Debian, NixOS, Alpine, Fedora and Arch that exists)
#        CANON_ABRA_BIN, CANON_ABRA_SHA256
#                            optional: an abra binary added to canon-plugin as /usr/local/bin/abra
#                            (for `runner: abra`), checked against its SHA-256; both or neither
#        VERSION, REVISION, CREATED   OCI label values (set by CI)
#
# Needs the docker CLI and engine, ldd, and a static busybox (on Debian,
# scripts/setup-system.sh busybox-static docker.io installs what is missing; on NixOS,
# `nix shell nixpkgs#pkgsStatic.busybox`).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "$*" >&2; }
die() { log "error: $*"; exit 1; }

version="$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
[ -n "$version" ] || die "no version in Cargo.toml's [workspace.package]"
read -r -a tags <<<"${CANON_IMAGE_TAG:-$version latest}"
[ "${#tags[@]}" -gt 0 ] || die "CANON_IMAGE_TAG names no tag"
for t in "${tags[@]}"; do
  [[ "$t" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "$t is not a Docker image tag"
done
tag="${tags[0]}"

command -v docker >/dev/null 2>&1 || die "the docker CLI is missing; the images are built with the local Docker engine"
command -v ldd >/dev/null 2>&1 || die "ldd is missing (it comes with the C library: Debian's libc-bin, NixOS's glibc.bin)"

# ---- binaries -------------------------------------------------------------------------------
plugin_bin="${CANON_PLUGIN_BIN:-}"
listener_bin="${CANON_LISTENER_BIN:-}"
if [ -z "$plugin_bin" ] || [ -z "$listener_bin" ]; then
  target_dir="${CANON_IMAGES_TARGET_DIR:-${CARGO_TARGET_DIR:-target}}"
  log "+ cargo build --release --locked -p canon-plugin -p canon-listener (target dir $target_dir)"
  CARGO_TARGET_DIR="$target_dir" cargo build --release --locked --quiet -p canon-plugin -p canon-listener >&2
  plugin_bin="${plugin_bin:-$target_dir/release/canon-plugin}"
  listener_bin="${listener_bin:-$target_dir/release/canon-listener}"
fi
for bin in "$plugin_bin" "$listener_bin"; do
  [ -x "$bin" ] || die "$bin is not an executable file"
done

# The real files, not wrappers' symlinks: what is copied is what runs in the image.
docker_client="$(readlink -f "${CANON_DOCKER_CLIENT:-$(command -v docker)}")"
[ -x "$docker_client" ] || die "no Docker client at ${CANON_DOCKER_CLIENT:-docker}; set CANON_DOCKER_CLIENT"
head -c 4 "$docker_client" | grep -q 'ELF' \
  || die "$docker_client is not an ELF binary (a wrapper script?); set CANON_DOCKER_CLIENT to the client itself"

busybox="${CANON_BUSYBOX:-$(command -v busybox || true)}"
[ -n "$busybox" ] || die "busybox is missing: install a static one (Debian: busybox-static) or set CANON_BUSYBOX"
busybox="$(readlink -f "$busybox")"
if ldd "$busybox" >/dev/null 2>&1; then
  die "$busybox is dynamically linked; install a static busybox (Debian: busybox-static) or set CANON_BUSYBOX"
fi

ca_bundle="${CANON_CA_BUNDLE:-}"
if [ -z "$ca_bundle" ]; then
  for candidate in /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-bundle.crt \
    /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do
    if [ -r "$candidate" ]; then ca_bundle="$candidate"; break; fi
  done
fi
[ -n "$ca_bundle" ] && [ -r "$ca_bundle" ] || die "no CA certificate bundle found; install your distribution's CA certificates or set CANON_CA_BUNDLE"

if [ -n "${CANON_ABRA_BIN:-}${CANON_ABRA_SHA256:-}" ]; then
  [ -n "${CANON_ABRA_BIN:-}" ] && [ -n "${CANON_ABRA_SHA256:-}" ] || die "CANON_ABRA_BIN and CANON_ABRA_SHA256 go together"
  echo "$CANON_ABRA_SHA256  $CANON_ABRA_BIN" | sha256sum -c --quiet - >&2 || die "$CANON_ABRA_BIN does not match CANON_ABRA_SHA256"
fi

# ---- root filesystems -----------------------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/canon-images.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Copies the ELF interpreter and every shared library ldd resolves for the given dynamic
# binaries into the root $1, each at the path ldd names (symlinks followed).
copy_libs() {
  local root="$1"; shift
  local libs lib
  # Library lines start with a tab; with several binaries, ldd heads each list with "<path>:".
  libs="$(ldd "$@" | awk '/^\t/ && $2 == "=>" && $3 ~ /^\// { print $3 } /^\t/ && $1 ~ /^\// { print $1 }' | sort -u)"
  [ -n "$libs" ] || die "ldd found no libraries for $*"
  for lib in $libs; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

# The files every image has: CA certificates, /tmp, passwd and group.
base_files() {
  local root="$1" passwd="$2" group="$3"
  mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/bin"
  chmod 1777 "$root/tmp"
  cp -L "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"
  printf '%s\n' "$passwd" > "$root/etc/passwd"
  printf '%s\n' "$group" > "$root/etc/group"
}

plugin="$work/plugin"
base_files "$plugin" "root:x:0:0:root:/root:/bin/sh" "root:x:0:"
mkdir -p "$plugin/usr/bin" "$plugin/root" "$plugin/drone/src"
install -m 0755 "$plugin_bin" "$plugin/bin/canon-plugin"
install -m 0755 "$docker_client" "$plugin/usr/bin/docker"
install -m 0755 "$busybox" "$plugin/bin/busybox"
for applet in $("$busybox" --list); do
  case "$applet" in busybox|canon-plugin|docker) continue ;; esac
  [ -e "$plugin/bin/$applet" ] || ln -s busybox "$plugin/bin/$applet"
done
if [ -n "${CANON_ABRA_BIN:-}" ]; then
  mkdir -p "$plugin/usr/local/bin"
  install -m 0755 "$CANON_ABRA_BIN" "$plugin/usr/local/bin/abra"
fi
dynamic=("$plugin_bin")
ldd "$docker_client" >/dev/null 2>&1 && dynamic+=("$docker_client")
copy_libs "$plugin" "${dynamic[@]}"

listener="$work/listener"
base_files "$listener" "canon:x:10001:10001:canon:/var/lib/canon:/nonexistent" "canon:x:10001:"
mkdir -p "$listener/var/lib/canon"
install -m 0755 "$listener_bin" "$listener/bin/canon-listener"
copy_libs "$listener" "$listener_bin"

# ---- images ---------------------------------------------------------------------------------
context="$work/context"
mkdir -p "$context"
cp Dockerfile "$context/Dockerfile"
tar -C "$plugin" --numeric-owner --owner=0 --group=0 -cf "$context/plugin-rootfs.tar" .
# Everything root's, but the state dir, which is canon's.
tar -C "$listener" --numeric-owner --owner=0 --group=0 --exclude=./var/lib/canon \
  -cf "$context/listener-rootfs.tar" .
tar -C "$listener" --numeric-owner --owner=10001 --group=10001 --no-recursion \
  -rf "$context/listener-rootfs.tar" ./var/lib/canon

labels=(
  --build-arg "VERSION=${VERSION:-$version}"
  --build-arg "REVISION=${REVISION:-unknown}"
  --build-arg "CREATED=${CREATED:-unknown}"
)
for name in canon-listener canon-plugin; do
  names=()
  for t in "${tags[@]}"; do names+=(-t "$name:$t"); done
  log "+ docker build --target $name ${names[*]}"
  docker build --quiet --target "$name" "${labels[@]}" "${names[@]}" "$context" >/dev/null
done

# Each binary starts in its image: a missing library fails here, not in a pipeline.
docker run --rm "canon-plugin:$tag" --version >&2
docker run --rm --entrypoint /usr/bin/docker "canon-plugin:$tag" --version >&2
docker run --rm "canon-listener:$tag" --version >&2

for name in canon-plugin canon-listener; do
  bytes="$(docker image inspect --format '{{.Size}}' "$name:$tag")"
  echo "$name:$tag $bytes $(awk -v b="$bytes" 'BEGIN { printf "%.1f MB", b / 1000000 }')"
done
