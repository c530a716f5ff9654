#!/usr/bin/env bash
# Benchmark: what polling costs the upstream forge. Serves N recipe repositories (default 21)
# over smart HTTP (`git http-backend` behind bench/git-http-backend.py, basic auth with a token),
# runs canon-listener with CANON_POLL_INTERVAL=2s and no webhooks, lets it poll ROUNDS times
# (default 5), and counts the HTTP requests the upstream server saw: per recipe per interval, and
# how many were listings (`GET /info/refs?service=git-upload-pack`) and how many the 401 that
# precedes an authenticated one. No release tag is new, so no job runs: every request is a poll's.
# Working files live in a temp dir.
#
# Usage: bench/poll.sh [N] [ROUNDS]     env: CANON_BIN (default target/debug/canon-listener)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
n=${1:-21}
rounds=${2:-5}
interval=2
bin=${CANON_BIN:-$root/target/debug/canon-listener}
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0
export GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=b@example.org GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=b@example.org

if [[ ! -x $bin ]]; then
    echo "+ cargo build -p canon-listener" >&2
    cargo build -q -p canon-listener >&2
fi

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work"/{served,mirror,state,src}

# One upstream per recipe: a few commits and tags that are not releases, so a poll lists them and
# never has anything to journal.
git init -q -b main "$work/src"
for i in 1 2 3; do
    echo "version: $i" >"$work/src/compose.yml"
    git -C "$work/src" add compose.yml
    git -C "$work/src" commit -q -m "change $i"
    git -C "$work/src" tag "draft-$i"
done
token=bench-token-0123456789
REQUEST_LOG="$work/requests.log" python3 bench/git-http-backend.py "$work/served" "$token" "$work/port" &
pids+=($!)
for _ in $(seq 50); do [[ -s $work/port ]] && break; sleep 0.1; done
port=$(cat "$work/port")

echo "recipes:" >"$work/enrollment.yml"
for i in $(seq "$n"); do
    git clone -q --bare "$work/src" "$work/served/r$i.git"
    git init -q --bare "$work/mirror/r$i.git"
    printf '  - name: r%d\n    upstream: http://127.0.0.1:%d/r%d.git\n    mirror: %s\n' \
        "$i" "$port" "$i" "$work/mirror/r$i.git" >>"$work/enrollment.yml"
done
: >"$work/requests.log"

env -i PATH="$PATH" HOME="$work" GIT_CONFIG_GLOBAL=/dev/null \
    CANON_BIND=127.0.0.1:0 \
    CANON_STATE_DIR="$work/state" \
    CANON_ENROLLMENT="$work/enrollment.yml" \
    CANON_WEBHOOK_SECRETS=bench-secret-0123456789 \
    CANON_DRONE_SERVER=http://127.0.0.1:9 \
    CANON_DRONE_TOKEN=unused \
    CANON_DRONE_REPO=canon/ci \
    CANON_FORGE_URL="http://127.0.0.1:$port" \
    CANON_FORGE_TOKEN="$token" \
    CANON_POLL_INTERVAL=${interval}s \
    CANON_LOG=warn \
    "$bin" >"$work/listener.log" 2>&1 &
pids+=($!)

# The first poll runs one interval after the start; wait for ROUNDS of them (plus slack).
started=$(date +%s.%N)
sleep $((interval * rounds + 1))
elapsed=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

# Count from one snapshot: the listener keeps polling while this runs.
cp "$work/requests.log" "$work/counted.log"
listings=$(grep -c 'info/refs?service=git-upload-pack 200' "$work/counted.log" || true)
challenges=$(grep -c ' 401$' "$work/counted.log" || true)
total=$(wc -l <"$work/counted.log")
polls=$((listings / n))
if ((polls == 0)); then
    echo "no poll completed in ${elapsed}s; listener log:" >&2
    cat "$work/listener.log" >&2
    exit 1
fi
echo "recipes: $n, interval: ${interval}s, ran: ${elapsed}s, poll rounds seen: $polls"
echo "requests: $total (listings: $listings, 401 challenges: $challenges, other: $((total - listings - challenges)))"
# A round cut by the snapshot counts as part of one; per listing is exact.
awk -v t="$total" -v l="$listings" 'BEGIN { printf "requests per recipe per poll: %.2f\n", t / l }'
# Anything but listings and their challenges would be a poll doing more than listing refs.
# One listing may be cut between its 401 and its 200.
if ((total - listings - challenges > 1)) || ((challenges - listings > 1)); then
    echo "unexpected requests:" >&2
    grep -v -e 'info/refs?service=git-upload-pack 200' -e ' 401$' "$work/counted.log" >&2
    exit 1
fi
