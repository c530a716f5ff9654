#!/usr/bin/env bash
# The embedded default: canon on one machine, no forge, no Drone.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-system.sh
cargo build --release -p canon-plugin
bin=target/release/canon-plugin
echo "Release tags of real Co-op Cloud recipes, in canon's order:"
cut -f2 shared/tests/data/real-recipe-tags.txt | grep -v '^#' | grep -v ' < ' | "$bin" versions sort
