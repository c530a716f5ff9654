#!/usr/bin/env bash
# Builds the fixture recipes' images from testapp/, each made with `docker import` (no registry,
# no base image, no builder):
# - `canon-testapp:<version>`: the static binary and nothing else;
# - `canon-testapp-sh:<version>`: the same with Debian's static busybox as /bin/sh and its
#   applets, for services whose backupbot hooks run a shell in the container.
# Cached by content hash: each image carries the label canon.content-hash; when it matches the
# sources, nothing is rebuilt. Safe to run concurrently (flock). Prints the first image's
# reference.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' testapp/Cargo.toml | head -n1)
image="canon-testapp:${version}"
hash=$(cat testapp/Cargo.toml testapp/src/*.rs "$0" | sha256sum | cut -c1-16)
shell_image="canon-testapp-sh:${version}"
busybox=/bin/busybox
if [ ! -x "$busybox" ]; then
  echo "error: $busybox is missing: install Debian's busybox-static (scripts/setup-system.sh)" >&2
  exit 1
fi
shell_hash=$( (echo "$hash"; sha256sum <"$busybox") | sha256sum | cut -c1-16)
target_dir="${CANON_FIXTURE_TARGET_DIR:-target/fixture-image}"
mkdir -p "$target_dir"

exec 9>"$target_dir/.lock"
flock 9

content_hash() {
  docker image inspect --format '{{ index .Config.Labels "canon.content-hash" }}' "$1" 2>/dev/null || true
}
if [ "$(content_hash "$image")" = "$hash" ] && [ "$(content_hash "$shell_image")" = "$shell_hash" ]; then
  echo "$image"
  exit 0
fi

echo "+ cargo build --release -p canon-testapp (static)" >&2
# Pure-Rust std program: glibc static linking is enough; no musl target needed.
RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$target_dir" \
  cargo build --release --quiet -p canon-testapp --target x86_64-unknown-linux-gnu >&2
bin="$target_dir/x86_64-unknown-linux-gnu/release/canon-testapp"
if ldd "$bin" 2>&1 | grep -q '=>'; then
  echo "error: $bin is dynamically linked; the image has no libc" >&2
  exit 1
fi

# import ROOT IMAGE HASH: the folder ROOT as the image IMAGE, labelled with HASH.
import() {
  echo "+ docker import $2" >&2
  tar -C "$1" --owner=0 --group=0 -c . | docker import \
    --change 'ENTRYPOINT ["/canon-testapp"]' \
    --change 'CMD ["serve"]' \
    --change 'EXPOSE 8080' \
    --change "LABEL canon.content-hash=$3" \
    --change 'LABEL canon.fixture=true' \
    - "$2" >/dev/null
}

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/data" "$root/tmp"
cp "$bin" "$root/canon-testapp"
if [ "$(content_hash "$image")" != "$hash" ]; then
  import "$root" "$image" "$hash"
fi
if [ "$(content_hash "$shell_image")" != "$shell_hash" ]; then
  mkdir -p "$root/bin"
  cp "$busybox" "$root/bin/busybox"
  for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
  import "$root" "$shell_image" "$shell_hash"
fi
echo "$image"
