#!/usr/bin/env bash
# Runs canon's whole test suite on a fresh machine: installs what the tests need, builds what the
# tests take prebuilt, then runs every test of the workspace. Tests that need Docker fail loudly
# when no engine answers. Each step says how long it took, so a slow run shows where its time went.
set -euo pipefail
cd "$(dirname "$0")/.."

# Runs one step of the suite and reports its wall time on stderr.
step() {
  local start=$SECONDS
  echo "+ $*" >&2
  "$@"
  echo "  took $((SECONDS - start)) s: $*" >&2
}

# nix-bin: parsing the NixOS module; busybox-static and docker.io (its client): what
# scripts/build-images.sh puts in the images of the image test; openssh-server: a loopback sshd
# for the git-over-SSH tests (started by the tests themselves, never as a service).
step bash scripts/setup-system.sh nix-bin busybox-static docker.io openssh-server
step bash scripts/ensure-swarm.sh
# Tests never run cargo themselves. The release binaries the image test puts in its images (the
# ones that ship) and the shared-state test runs as two users are built here, and handed to the
# tests by path.
target_dir="${CARGO_TARGET_DIR:-target}"
step cargo build --release --locked --bins -p canon-plugin -p canon-listener
CANON_PLUGIN_BIN="$(realpath "$target_dir/release/canon-plugin")"
CANON_LISTENER_BIN="$(realpath "$target_dir/release/canon-listener")"
export CANON_PLUGIN_BIN CANON_LISTENER_BIN
# The fixture recipes' images (cached by content hash), so the engine tests find them built.
step bash scripts/build-fixture-image.sh
# The engine tests take turns (the `engine` group of .config/nextest.toml); the rest run beside.
step cargo nextest run --workspace --no-fail-fast "$@"
step cargo test --workspace --doc
