#!/usr/bin/env bash
# Runs canon's whole test suite on a fresh machine: installs what the tests need, builds what the
# tests take prebuilt, then runs every test of the workspace, with clippy's lints (`-D warnings`)
# checked beside them. Tests that need Docker fail loudly when no engine answers. Each step says how long it took, so a slow run shows where its time went.
set -euo pipefail
cd "$(dirname "$0")/.."

# Runs one step of the suite, reports its wall time on stderr and returns the step's status
# (also when the caller tests it with `||`, where `set -e` does not stop a failed step).
step() {
  local start=$SECONDS status=0
  echo "+ $*" >&2
  "$@" || status=$?
  echo "  took $((SECONDS - start)) s: $*" >&2
  return "$status"
}

# nix-bin: parsing the NixOS module; busybox-static and docker.io (its client): what
# scripts/build-images.sh puts in the images of the image test; openssh-server: a loopback sshd
# for the git-over-SSH tests (started by the tests themselves, never as a service).
step bash scripts/setup-system.sh nix-bin busybox-static docker.io openssh-server
step bash scripts/ensure-swarm.sh
# The fixture recipes' images (cached by content hash), so the engine tests find them built.
step bash scripts/build-fixture-image.sh

# Tests never run cargo themselves: what they run is built here and handed to them by path.
target_dir="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
# This also builds both binaries (target/debug/canon-*): the crates' integration tests run them.
step cargo nextest run --workspace --no-run
listener_bin="$target_dir/debug/canon-listener"
if [ ! -x "$listener_bin" ]; then
  echo "error: the test build left no $listener_bin" >&2
  exit 1
fi
# The image test puts the release binaries (the ones that ship) in its images. They build in
# their own target dir, beside the test run: the engine tests spend most of their time waiting
# for the swarm, not on the CPU.
release_dir="$target_dir/release-images"
release_log="$target_dir/release-images.log"
mkdir -p "$target_dir"
echo "+ cargo build --release (beside the tests, log: $release_log)" >&2
release_start=$SECONDS
cargo build --release --locked --bins -p canon-plugin -p canon-listener \
  --target-dir "$release_dir" >"$release_log" 2>&1 &
release_pid=$!
# Lints check every target of the workspace in a target dir of their own (no lock shared with
# the test run), also beside the tests.
lints_log="$target_dir/clippy.log"
echo "+ cargo clippy (beside the tests, log: $lints_log)" >&2
lints_start=$SECONDS
cargo clippy --workspace --all-targets --target-dir "$target_dir/clippy" -- -D warnings \
  >"$lints_log" 2>&1 &
lints_pid=$!
trap 'kill "$release_pid" "$lints_pid" 2>/dev/null || true' EXIT

# Every test but the image test: the shared-state test runs the listener built above. The engine
# tests take turns (the `engine` group of .config/nextest.toml); the rest run beside them.
status=0
CANON_LISTENER_BIN="$listener_bin" \
  step cargo nextest run --workspace --no-fail-fast --no-tests=pass \
  -E 'not (package(canon-plugin) & kind(test) & test(/^engine::image::/))' "$@" || status=$?

if ! wait "$release_pid"; then
  cat "$release_log" >&2
  echo "error: the release build for the image test failed" >&2
  exit 1
fi
echo "  took $((SECONDS - release_start)) s: cargo build --release (beside the tests)" >&2
CANON_PLUGIN_BIN="$release_dir/release/canon-plugin" \
CANON_LISTENER_BIN="$release_dir/release/canon-listener" \
  step cargo nextest run --workspace --no-fail-fast --no-tests=pass \
  -E 'package(canon-plugin) & kind(test) & test(/^engine::image::/)' "$@" || status=$?

step cargo test --workspace --doc || status=$?

if wait "$lints_pid"; then
  echo "  took $((SECONDS - lints_start)) s: cargo clippy (beside the tests)" >&2
else
  cat "$lints_log" >&2
  echo "error: cargo clippy found problems (above)" >&2
  status=1
fi
trap - EXIT
exit "$status"
