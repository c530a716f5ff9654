#!/usr/bin/env bash
# Benchmark: one decision through each state store, side by side in one run.
#
# A decision is `canon-plugin canonical pin` or `unpin` (lock, read the canonical, decide, write
# the record and one history line); N of them alternate (default 40) against
#   1. the state dir (local files), and
#   2. a git state repository served over smart HTTP on loopback (`git http-backend` behind basic
#      auth, bench/git-http-backend.py), each decision one commit pushed without force.
# Both start from the same exported canonical. It prints the mean wall time per decision of each
# (process start included, the same for both) and what the repository adds per decision.
# Working files live in bench/work (git-ignored).
#
# Usage: bench/state-store.sh [N]     env: CANON_BIN (default target/release/canon-plugin)
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
n=${1:-40}
bin=${CANON_BIN:-$root/target/release/canon-plugin}
work=$root/bench/work/state-store
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0
export RUST_LOG=${RUST_LOG:-warn}
export GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=b@example.org GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=b@example.org

if [[ ! -x $bin ]]; then
    echo "+ cargo build --release -p canon-plugin" >&2
    cargo build --release -p canon-plugin >&2
fi

now() { date +%s.%N; }

rm -rf "$work"
mkdir -p "$work"/{files/bench,served,exported,host}
cat > "$work/files/bench/canonical.json" <<JSON
{"recipe": "bench", "version": "1.0.0+1", "commit": "$(printf 'a%.0s' {1..40})", "promoted_at": "2026-01-01T00:00:00Z"}
JSON
"$bin" state export --state-dir "$work/files" --out "$work/exported" >/dev/null
git -C "$work/exported" init -q -b main
git -C "$work/exported" add .
git -C "$work/exported" commit -q -m "bench state"
git init -q --bare -b main "$work/served/state.git"
git -C "$work/exported" push -q "$work/served/state.git" main
token=bench-token
printf '%s\n' "$token" > "$work/token"
python3 bench/git-http-backend.py "$work/served" "$token" "$work/port" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do [[ -s $work/port ]] && break; sleep 0.1; done
url="http://127.0.0.1:$(cat "$work/port")/state.git"

# decide <n> <extra args...>: n alternating pin/unpin decisions; prints the seconds taken.
decide() {
    local count=$1
    shift
    local start
    start=$(now)
    for i in $(seq "$count"); do
        if (( i % 2 )); then verb=pin; else verb=unpin; fi
        "$bin" canonical "$verb" --recipe bench --reason "bench $i" --by bench "$@" >/dev/null
    done
    awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'
}

files_s=$(decide "$n" --state-dir "$work/files")
git_s=$(decide "$n" --state-dir "$work/host" --state-repo "$url" --mirror-token-file "$work/token")

commits=$(git -C "$work/served/state.git" rev-list --count main)
lines=$(git -C "$work/served/state.git" show main:bench/history.jsonl | wc -l)
[[ $commits -eq $((n + 1)) && $lines -eq $n ]] || {
    echo "the repository holds $commits commits and $lines history lines, not $((n + 1)) and $n" >&2
    exit 1
}
awk -v n="$n" -v f="$files_s" -v g="$git_s" 'BEGIN {
    printf "decisions per store:        %d\n", n
    printf "state dir (files):          %.1f ms per decision\n", f / n * 1000
    printf "state repository (git/HTTP): %.1f ms per decision\n", g / n * 1000
    printf "the repository adds:        %.1f ms per decision (%.1fx)\n", (g - f) / n * 1000, g / f
}'
