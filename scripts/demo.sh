#!/usr/bin/env bash
# The embedded default: canon's whole loop on one machine, no forge and no Drone.
# Makes a local upstream of the fixture recipe with two release tags, then sweeps twice with the
# docker runner: the first sweep tests and promotes the latest tag (a real cold deploy on a
# single-node swarm, then the warm canonical), the second reports "no new version".
# State goes to ./canon-state; the demo repos to ./canon-demo.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-system.sh
bash scripts/ensure-swarm.sh
cargo build --release --quiet -p canon-plugin
bash scripts/build-fixture-image.sh >/dev/null
bash examples/standalone/make-upstream.sh ./canon-demo

# sweep [--init]: the first sweep creates the state dir (--init); later ones find it.
sweep() {
  target/release/canon-plugin sweep "$@" \
    --config ./canon-demo/enrollment.yml \
    --state-dir ./canon-state \
    --inline --runner docker \
    --report ./canon-demo/sweep-report.json
}

echo "== First sweep: the latest release is tested cold and promoted"
sweep --init
echo
echo "== Second sweep: nothing new upstream"
sweep
echo
echo "== The canonical"
target/release/canon-plugin canonical show --state-dir ./canon-state --recipe canon-fixture
