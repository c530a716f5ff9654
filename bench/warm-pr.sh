#!/usr/bin/env bash
# Benchmark: a pull request's run, warm and cold, side by side in one run.
#
# The fixture recipe (fixtures/recipe) in a local upstream and mirror, with a release tag and a
# pull-request branch that changes the app's version. Its app pays a first-boot cost on a fresh
# install (FIRST_BOOT_SECONDS, default 20, given to every run with `--env`), as a real app's
# migrations and seeding do. The tag is promoted once with the docker runner, so a canonical with
# warm data exists on this host; then the branch is run N times each way (default 1), alternating
# which goes first:
#   warm  `canon-plugin run --ref refs/heads/<branch>`: copies the canonical's warm volumes,
#         skips the install and upgrades the head over the copied data;
#   cold  the same with `--cold`: installs the canonical's tag fresh, then upgrades.
# Every run must be green, and the warm one must have skipped its install. It prints each run's
# wall time (process start included), the mean of each and the ratio warm/cold. The warm
# canonical is removed at the end. Working files live in bench/work (git-ignored).
#
# Usage: bench/warm-pr.sh [N]     env: CANON_BIN (default target/release/canon-plugin),
#                                      FIRST_BOOT_SECONDS (default 20)
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
n=${1:-1}
first_boot=${FIRST_BOOT_SECONDS:-20}
bin=${CANON_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/canon-plugin}
work=$root/bench/work/warm-pr
recipe=bench-warm-pr
tag=1.0.0+0.1.0
branch=bench-pr
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

# Removes this bench's warm canonical (stack, volumes, secrets); cold runs clean up after
# themselves.
drop_warm() {
    local warm=warm-$recipe
    docker stack rm "$warm" >/dev/null 2>&1 || true
    for _ in $(seq 60); do
        [[ -z $(docker ps -aq --filter "label=com.docker.stack.namespace=$warm") ]] && break
        sleep 1
    done
    docker volume ls -q --filter "name=$warm" | xargs -r docker volume rm >/dev/null
    docker secret ls -q --filter "name=$warm" | xargs -r docker secret rm >/dev/null
}

rm -rf "$work"
mkdir -p "$work"/{logs,runs}
drop_warm
trap drop_warm EXIT

# The upstream: the fixture released at $tag on main, and a pull-request branch on top.
git init -q --bare -b main "$work/upstream.git"
git init -q -b main "$work/recipe"
cp -r fixtures/recipe/. "$work/recipe/"
(
    cd "$work/recipe"
    sed -i "s|coop-cloud.\${STACK_NAME}.version=[^\"]*|coop-cloud.\${STACK_NAME}.version=$tag|" compose.yml
    git add -A
    git commit -q -m "chore: publish $tag release"
    git tag -a "$tag" -m "chore: publish $tag release"
    git checkout -q -b "$branch"
    sed -i "s|APP_VERSION=1.0.0|APP_VERSION=1.0.1|" compose.yml
    git commit -q -am "app 1.0.1"
    git push -q "$work/upstream.git" main "$branch" --tags
)
head=$(git -C "$work/recipe" rev-parse "$branch")
# The mirror carries the pull request's branch, as a recipe mirror does.
git clone -q --mirror "$work/upstream.git" "$work/mirror.git"

cat > "$work/enrollment.yml" <<YAML
recipes:
  - name: $recipe
    upstream: $work/upstream.git
    mirror: $work/mirror.git
    health_path: /health
    deploy_timeout: 180
YAML

# run <log name> <args...>: one canon-plugin run; prints its wall time in seconds. A run that is
# not green stops the bench with the tail of its log.
run() {
    local log=$work/logs/$1.log
    shift
    local start
    start=$(now)
    if ! "$bin" run --init --config "$work/enrollment.yml" --state-dir "$work/state" \
        --work-dir "$work/runs" --recipe "$recipe" --runner docker \
        --env "FIRST_BOOT_SECONDS=$first_boot" "$@" >"$log" 2>&1; then
        echo "canon-plugin run $* was not green; the end of $log:" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
    awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'
}

# install_status <report>: the install stage's status in a run's report.
install_status() {
    python3 -c 'import json, sys
stages = json.load(open(sys.argv[1]))["stages"]
print(next(s["status"] for s in stages if s["name"] == "install"))' "$1"
}

echo "== Promoting $tag (first boot ${first_boot} s) so the canonical has warm data" >&2
promote_s=$(run promote --tag "$tag" --report "$work/promote.json")
canonical=$("$bin" canonical show --state-dir "$work/state" --recipe "$recipe")
if [[ $canonical != *"$tag"* ]]; then
    echo "the promote run was green but $tag is not the canonical: $canonical" >&2
    exit 1
fi
echo "promote: ${promote_s} s" >&2

warm_total=0
cold_total=0
for i in $(seq "$n"); do
    if (( i % 2 )); then order="warm cold"; else order="cold warm"; fi
    for kind in $order; do
        flags=()
        [[ $kind == cold ]] && flags=(--cold)
        s=$(run "$kind-$i" --ref "refs/heads/$branch" --commit "$head" "${flags[@]}" \
            --report "$work/$kind-$i.json")
        status=$(install_status "$work/$kind-$i.json")
        if [[ $kind == warm && $status != skipped ]]; then
            echo "the warm run's install stage is $status, not skipped: it did not run warm" >&2
            exit 1
        fi
        if [[ $kind == cold && $status != passed ]]; then
            echo "the cold run's install stage is $status, not passed" >&2
            exit 1
        fi
        echo "round $i $kind: $s s" >&2
        if [[ $kind == warm ]]; then
            warm_total=$(awk -v t="$warm_total" -v s="$s" 'BEGIN { print t + s }')
        else
            cold_total=$(awk -v t="$cold_total" -v s="$s" 'BEGIN { print t + s }')
        fi
    done
done

awk -v n="$n" -v w="$warm_total" -v c="$cold_total" -v fb="$first_boot" 'BEGIN {
    printf "runs of the pull request, each way: %d (first boot %d s)\n", n, fb
    printf "warm (copied canonical, upgrade):   %.1f s per run\n", w / n
    printf "cold (fresh install, upgrade):      %.1f s per run\n", c / n
    printf "warm / cold:                        %.2f\n", w / c
}'
