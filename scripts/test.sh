#!/usr/bin/env bash
# Runs canon's whole test suite on a fresh machine: installs what the tests need, then runs
# every test of the workspace. Tests that need Docker fail loudly when no engine answers.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium: the status page and badge screenshots; tesseract-ocr: reading them back; nix-bin:
# parsing the NixOS module; busybox-static and docker.io (its client): what
# scripts/build-images.sh puts in the images of the image test; openssh-server: a loopback sshd
# for the git-over-SSH tests (started by the tests themselves, never as a service).
bash scripts/setup-system.sh chromium tesseract-ocr nix-bin busybox-static docker.io openssh-server
bash scripts/ensure-swarm.sh
cargo nextest run --workspace --no-fail-fast "$@"
cargo test --workspace --doc
