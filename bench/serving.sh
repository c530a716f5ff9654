#!/usr/bin/env bash
# Benchmark: what the serving check costs a green run, with and without it side by side in one run.
#
# The fixture recipe (fixtures/recipe) on a `proxy` network as Co-op Cloud recipes join
# traefik's, in the fixture image with busybox (the serving check's request container runs the
# service's image), in a local upstream and mirror. The same commit of `main` is run N times
# each way (default 1), alternating which goes first, each a cold `canon-plugin run --ref`
# (install, backup, restore; nothing promoted):
#   on   the enrollment asks for `serving: {path: /version}`: install and restore each run the
#        serving check;
#   off  the same enrollment with `serving: {skip: true}` (the bench aid the enrollment
#        documents): no serving check.
# Every run must be green, and the `on` runs' install must report its `serving` field. It prints
# each run's wall time (process start included), the mean of each and the difference per run.
# The bench's proxy network is removed at the end. Working files live in bench/work
# (git-ignored).
#
# Usage: bench/serving.sh [N]     env: CANON_BIN (default target/release/canon-plugin)
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
n=${1:-1}
bin=${CANON_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/canon-plugin}
work=$root/bench/work/serving
recipe=bench-serving
network=bench-serving-proxy
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0
export RUST_LOG=${RUST_LOG:-warn}
export GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=b@example.org GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=b@example.org

if [[ ! -x $bin ]]; then
    echo "+ cargo build --release -p canon-plugin" >&2
    cargo build --release -p canon-plugin >&2
fi
bash scripts/ensure-swarm.sh
bash scripts/build-fixture-image.sh >/dev/null

now() { date +%s.%N; }

drop_network() {
    docker network rm "$network" >/dev/null 2>&1 || true
}

rm -rf "$work"
mkdir -p "$work"/{logs,runs}
trap drop_network EXIT

# The upstream: the fixture on the proxy network, committed on main.
git init -q --bare -b main "$work/upstream.git"
git init -q -b main "$work/recipe"
cp -r fixtures/recipe/. "$work/recipe/"
(
    cd "$work/recipe"
    python3 - "$network" <<'PY'
import sys
text = open("compose.yml").read()
text = text.replace("image: canon-testapp:0.1.0", "image: canon-testapp-sh:0.1.0")
text = text.replace("    networks:\n      - internal\n", "    networks:\n      - internal\n      - proxy\n")
text = text.replace("networks:\n  internal:\n",
                    "networks:\n  internal:\n  proxy:\n    external: true\n    name: %s\n" % sys.argv[1])
assert "- proxy" in text and sys.argv[1] in text
open("compose.yml", "w").write(text)
PY
    git add -A
    git commit -q -m "fixture on a proxy network"
    git push -q "$work/upstream.git" main
)
head=$(git -C "$work/recipe" rev-parse main)
git clone -q --mirror "$work/upstream.git" "$work/mirror.git"

# enrollment <file> <serving line>
enrollment() {
    cat > "$1" <<YAML
recipes:
  - name: $recipe
    upstream: $work/upstream.git
    mirror: $work/mirror.git
    deploy_timeout: 180
    $2
YAML
}
enrollment "$work/on.yml" "serving: {path: /version}"
enrollment "$work/off.yml" "serving: {skip: true}"

# run <kind> <round>: one canon-plugin run; prints its wall time in seconds. A run that is not
# green stops the bench with the tail of its log.
run() {
    local log=$work/logs/$1-$2.log
    local start
    start=$(now)
    if ! "$bin" run --init --config "$work/$1.yml" --state-dir "$work/state-$1" \
        --work-dir "$work/runs" --recipe "$recipe" --runner docker \
        --ref refs/heads/main --commit "$head" --report "$work/$1-$2.json" >"$log" 2>&1; then
        echo "canon-plugin run ($1) was not green; the end of $log:" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
    awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'
}

# install_serving <report>: the install stage's serving field, `none` without one.
install_serving() {
    python3 -c 'import json, sys
stages = json.load(open(sys.argv[1]))["stages"]
s = next(s for s in stages if s["name"] == "install").get("serving")
print(json.dumps(s) if s else "none")' "$1"
}

on_total=0
off_total=0
for i in $(seq "$n"); do
    if (( i % 2 )); then order="on off"; else order="off on"; fi
    for kind in $order; do
        s=$(run "$kind" "$i")
        serving=$(install_serving "$work/$kind-$i.json")
        if [[ $kind == on && $serving == none ]]; then
            echo "the run with the serving check reports no serving field at install" >&2
            exit 1
        fi
        if [[ $kind == off && $serving != none ]]; then
            echo "the run without the serving check reports one: $serving" >&2
            exit 1
        fi
        echo "round $i $kind: $s s (install serving: $serving)" >&2
        if [[ $kind == on ]]; then
            on_total=$(awk -v t="$on_total" -v s="$s" 'BEGIN { print t + s }')
        else
            off_total=$(awk -v t="$off_total" -v s="$s" 'BEGIN { print t + s }')
        fi
    done
done

awk -v n="$n" -v a="$on_total" -v b="$off_total" 'BEGIN {
    printf "green runs each way: %d (install, backup, restore; two serving checks per run)\n", n
    printf "with the serving check:     %.1f s per run\n", a / n
    printf "without (serving.skip):     %.1f s per run\n", b / n
    printf "difference:                 %+.1f s per run\n", (a - b) / n
}'
