#!/usr/bin/env bash
# Benchmark: canon's mirror sync against the git CLI baseline, side by side in one run.
#
# Creates N recipe repos (default 200; ~100 commits and 30 annotated tags each, via git
# fast-import) with an upstream and two mirrors each (one kept by canon, one by the CLI baseline),
# brings both mirrors in sync, then times:
#   1. a no-op sync of all N repos (checked: every canon run reports N no-ops, and no ref of any
#      repo, cache included, changed);
#   2. a sync where one repo got one new tag;
# for `canon-plugin mirror-sync --config` (sequential, --jobs 1, and parallel, --jobs 4) and for
# the baseline: per repo, one after the other, `git fetch` into a bare cache, then `git push
# --force` of the branch and the tags. The ratio compares canon --jobs 1 with that serial loop.
# Working files live in bench/work (git-ignored).
#
# Usage: bench/mirror-sync.sh [N]     env: CANON_BIN (default target/release/canon-plugin)
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
n=${1:-200}
commits=${COMMITS:-100}
tags=${TAGS:-30}
bin=${CANON_BIN:-$root/target/release/canon-plugin}
work=$root/bench/work/mirror-sync
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0
export RUST_LOG=${RUST_LOG:-warn}
export GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=b@example.org GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=b@example.org

if [[ ! -x $bin ]]; then
    echo "+ cargo build --release -p canon-plugin" >&2
    cargo build --release -p canon-plugin >&2
fi

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

rm -rf "$work"
mkdir -p "$work"/{upstream,mirror-canon,mirror-cli,cli-cache,state}

# One fast-import stream per repo: $commits commits on main, a tag every few commits.
gen_stream() {
    local id=$1 every=$((commits / tags)) mark t=0
    for ((mark = 1; mark <= commits; mark++)); do
        printf 'commit refs/heads/main\nmark :%d\ncommitter Bench <b@example.org> %d +0000\ndata <<EOM\nrecipe %s change %d\nEOM\n' \
            "$mark" $((1700000000 + mark * 60)) "$id" "$mark"
        ((mark > 1)) && printf 'from :%d\n' $((mark - 1))
        printf 'M 644 inline compose.yml\ndata <<EOM\nversion: "%d"\nrecipe: %s\nEOM\n' "$mark" "$id"
        printf 'M 644 inline file-%d.txt\ndata <<EOM\n%s %d\nEOM\n\n' $((mark % 10)) "$id" "$mark"
        if ((mark % every == 0 && t < tags)); then
            t=$((t + 1))
            printf 'tag %d.0.0+1.%d\nfrom :%d\ntagger Bench <b@example.org> %d +0000\ndata <<EOM\nrelease %d\nEOM\n\n' \
                "$t" "$t" "$mark" $((1700000000 + mark * 60)) "$t"
        fi
    done
}

echo "Creating $n repos ($commits commits, $tags tags each) in $work ..." >&2
start=$(now)
enroll=$work/enrollment.yml
echo "recipes:" >"$enroll"
for ((i = 1; i <= n; i++)); do
    id=$(printf 'r%03d' "$i")
    git init -q --bare "$work/upstream/$id.git"
    gen_stream "$id" | git -C "$work/upstream/$id.git" fast-import --quiet
    git init -q --bare "$work/mirror-canon/$id.git"
    git init -q --bare "$work/mirror-cli/$id.git"
    git init -q --bare "$work/cli-cache/$id.git"
    printf '  - name: %s\n    upstream: %s\n    mirror: %s\n' \
        "$id" "$work/upstream/$id.git" "$work/mirror-canon/$id.git" >>"$enroll"
done
echo "created in $(elapsed "$start") s" >&2

# The baseline: what an operator would script with the git CLI, per repo.
cli_sync() {
    local id=$1 cache=$work/cli-cache/$1.git
    git -C "$cache" fetch -q --prune "$work/upstream/$id.git" \
        '+refs/heads/main:refs/heads/main' '+refs/tags/*:refs/tags/*'
    git -C "$cache" push -q --force "$work/mirror-cli/$id.git" \
        'refs/heads/main:refs/heads/main' 'refs/tags/*:refs/tags/*'
}
cli_all() {
    for ((i = 1; i <= n; i++)); do cli_sync "$(printf 'r%03d' "$i")"; done
}
canon_all() {
    mkdir -p "$work/state"
    "$bin" mirror-sync --config "$enroll" --state-dir "$work/state" --jobs "$1" >"$work/canon-$2.log"
}

declare -A t
start=$(now); canon_all 1 initial; t[canon_initial]=$(elapsed "$start")
start=$(now); cli_all; t[cli_initial]=$(elapsed "$start")

# Every ref of every repo (upstreams, both mirrors, the CLI caches and canon's caches).
refs_snapshot() {
    local d
    for d in "$work"/upstream/*.git "$work"/mirror-canon/*.git "$work"/mirror-cli/*.git \
        "$work"/cli-cache/*.git "$work"/state/*/upstream.git; do
        echo "== ${d#"$work"/}"
        git -C "$d" for-each-ref --format='%(refname) %(objectname)'
    done
}
# A canon run must report every repo as a no-op (nothing fetched, nothing pushed).
check_noop() {
    grep -q "$n ok ($n no-op), 0 failed" "$work/canon-$1.log" || {
        echo "the canon $1 run was not a no-op:" >&2; tail -3 "$work/canon-$1.log" >&2; exit 1; }
}

# The no-op runs are repeated (alternating, best of 3) so a busy machine skews neither side. The
# fair pair is canon --jobs 1 against the serial CLI loop; --jobs 4 is shown for scale only.
refs_snapshot >"$work/refs-before-noop.txt"
min() { awk -v a="${1:-}" -v b="$2" 'BEGIN { if (a == "" || b < a) print b; else print a }'; }
for _ in 1 2 3; do
    start=$(now); canon_all 1 noop; t[canon_noop]=$(min "${t[canon_noop]:-}" "$(elapsed "$start")")
    check_noop noop
    start=$(now); canon_all 4 noop4; t[canon_noop4]=$(min "${t[canon_noop4]:-}" "$(elapsed "$start")")
    check_noop noop4
    start=$(now); cli_all; t[cli_noop]=$(min "${t[cli_noop]:-}" "$(elapsed "$start")")
done
# ... and must really have changed nothing, anywhere.
refs_snapshot >"$work/refs-after-noop.txt"
diff -q "$work/refs-before-noop.txt" "$work/refs-after-noop.txt" >/dev/null || {
    echo "a no-op run changed refs:" >&2
    diff "$work/refs-before-noop.txt" "$work/refs-after-noop.txt" | head >&2; exit 1; }

# One repo gets one new tag.
hit=$(printf 'r%03d' $(((n + 1) / 2)))
git -C "$work/upstream/$hit.git" tag -a -m "new release" 99.0.0+9 main~3
start=$(now); canon_all 1 newtag; t[canon_newtag]=$(elapsed "$start")
start=$(now); cli_all; t[cli_newtag]=$(elapsed "$start")
grep -q "^ok   $hit: created 1," "$work/canon-newtag.log" || {
    echo "canon did not push the new tag" >&2; exit 1; }

# Both mirrors must now equal upstream for main and tags.
for id in r001 "$hit" "$(printf 'r%03d' "$n")"; do
    for m in mirror-canon mirror-cli; do
        diff <(git -C "$work/upstream/$id.git" for-each-ref --format='%(refname) %(objectname)' refs/heads/main refs/tags) \
             <(git -C "$work/$m/$id.git" for-each-ref --format='%(refname) %(objectname)' refs/heads/main refs/tags) \
            >/dev/null || { echo "$m/$id differs from upstream" >&2; exit 1; }
    done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fx", a / b }'; }
echo
echo "mirror-sync benchmark: $n repos, $commits commits and $tags annotated tags each"
printf '%-28s %10s %10s %10s %12s\n' "case" "canon -j1" "canon -j4" "git CLI" "CLI/canon-j1"
printf '%-28s %9ss %10s %9ss %12s\n' "first sync (fill)" "${t[canon_initial]}" "-" "${t[cli_initial]}" "$(ratio "${t[cli_initial]}" "${t[canon_initial]}")"
printf '%-28s %9ss %9ss %9ss %12s\n' "no-op, all repos (best of 3)" "${t[canon_noop]}" "${t[canon_noop4]}" "${t[cli_noop]}" "$(ratio "${t[cli_noop]}" "${t[canon_noop]}")"
printf '%-28s %9ss %10s %9ss %12s\n' "one new tag in one repo" "${t[canon_newtag]}" "-" "${t[cli_newtag]}" "$(ratio "${t[cli_newtag]}" "${t[canon_newtag]}")"
