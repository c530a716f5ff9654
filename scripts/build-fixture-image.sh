#!/usr/bin/env bash
# Builds the fixture recipe's image `canon-testapp:<version>` from testapp/ (a static binary in an
# image with nothing else, made with `docker import`: no registry, no base image, no builder).
# Cached by content hash: the image carries the label canon.content-hash; when it matches the
# sources, nothing is rebuilt. Safe to run concurrently (flock). Prints the image reference.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' testapp/Cargo.toml | head -n1)
image="canon-testapp:${version}"
hash=$(cat testapp/Cargo.toml testapp/src/*.rs "$0" | sha256sum | cut -c1-16)
target_dir="${CANON_FIXTURE_TARGET_DIR:-target/fixture-image}"
mkdir -p "$target_dir"

exec 9>"$target_dir/.lock"
flock 9

current=$(docker image inspect --format '{{ index .Config.Labels "canon.content-hash" }}' "$image" 2>/dev/null || true)
if [ "$current" = "$hash" ]; then
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

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/data" "$root/tmp"
cp "$bin" "$root/canon-testapp"
echo "+ docker import $image" >&2
tar -C "$root" --owner=0 --group=0 -c . | docker import \
  --change 'ENTRYPOINT ["/canon-testapp"]' \
  --change 'CMD ["serve"]' \
  --change 'EXPOSE 8080' \
  --change "LABEL canon.content-hash=$hash" \
  --change 'LABEL canon.fixture=true' \
  - "$image" >/dev/null
echo "$image"
