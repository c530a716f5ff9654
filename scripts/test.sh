#!/usr/bin/env bash
# Runs canon's whole test suite on a fresh machine: installs what the tests need, then runs
# every test of the workspace. Tests that need Docker fail loudly when no engine answers.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-system.sh
cargo nextest run --workspace --no-fail-fast "$@"
cargo test --workspace --doc
