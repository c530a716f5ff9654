#!/usr/bin/env bash
# Benchmarks canon-listener against Debian's `webhook` (adnanh/webhook 2.8) on this machine, in
# the same run, with the same signed ~5 KB payload and 32 connections (wrk):
#   (a) verify-and-ack: canon answering a signed branch push (verified, parsed, ignored: 200)
#       vs adnanh's payload-hmac-sha256 rule passing and its regex rule not matching (403);
#   (b) canon's durable ack: a signed release-tag push, answered 202 only after the fsync, each
#       request with a new delivery id (the journal stores one row per id, so a fixed id would
#       measure replays);
#   (c) a burst: 30,000 distinct signed tags of the enrolled recipe, 32 at a time, then one read
#       of the status page and of /api/jobs. The recipe's upstream does not exist, so the worker
#       fails each job at once and moves on: the burst is journal and worker load, no Drone.
# Prints throughput and p99 side by side, the listener's RSS (VmRSS) after the verify run and
# after the burst, and its peak RSS.
# Usage: bench/listener.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"

for bin in wrk webhook openssl; do
  command -v "$bin" >/dev/null || { echo "missing $bin: apt-get install wrk webhook openssl" >&2; exit 1; }
done
cargo build --release -q -p canon-listener
listener="$PWD/target/release/canon-listener"

work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

secret="bench-secret-0123456789abcdef"
up="$work/upstream/recipe"   # never created: the worker's attempts fail fast and wait
python3 - "$work" "$up" <<'EOF'
import json, sys
work, up = sys.argv[1], sys.argv[2]
def payload(ref):
    commits = [{"id": "%040x" % i, "message": "change %d: " % i + "x" * 45,
                "url": "https://git.example.org/upstream/recipe/commit/%040x" % i,
                "author": {"name": "A", "email": "a@example.org", "username": "a"},
                "committer": {"name": "A", "email": "a@example.org", "username": "a"},
                "timestamp": "2026-11-26T10:00:00Z", "added": [], "removed": [], "modified": ["compose.yml"]}
               for i in range(8)]
    return json.dumps({"ref": ref, "before": "0" * 40, "after": "7c3a3b1e0f2d4c5b6a79881726354433221100ff",
        "compare_url": "", "commits": commits, "total_commits": 8,
        "head_commit": commits[0],
        "repository": {"full_name": "upstream/recipe", "clone_url": up, "html_url": up},
        "pusher": {"login": "a"}, "sender": {"login": "a"}}, indent=2)
open(f"{work}/branch.json", "w").write(payload("refs/heads/main"))
open(f"{work}/tag.json", "w").write(payload("refs/tags/1.2.0+1.0"))
EOF
sig() { openssl dgst -sha256 -hmac "$secret" -r "$1" | cut -d' ' -f1; }

mkdir -p "$work/mirror"
cat >"$work/enrollment.yml" <<EOF
recipes:
  - name: recipe
    upstream: $up
    mirror: $work/mirror/recipe.git
EOF

lua() { # body-file signature
  cat <<EOF
local f = io.open("$1", "rb"); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Gitea-Event"] = "push"
wrk.headers["X-Gitea-Signature"] = "$2"
-- A new delivery id per request: the thread's number and its own counter.
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local n = 0
function request()
  n = n + 1
  wrk.headers["X-Gitea-Delivery"] = string.format("%08d-0000-4000-8000-%012d", tid or 0, n)
  return wrk.format()
end
EOF
}
lua "$work/branch.json" "$(sig "$work/branch.json")" >"$work/branch.lua"
lua "$work/tag.json" "$(sig "$work/tag.json")" >"$work/tag.lua"

# adnanh/webhook, configured as in the peers survey (section 6).
cat >"$work/hooks.json.tmpl" <<'EOF'
[{"id": "gitea-tag", "execute-command": "/bin/true", "http-methods": ["POST"],
  "response-message": "queued\n", "success-http-response-code": 202,
  "trigger-rule-mismatch-http-response-code": 403,
  "pass-arguments-to-command": [{"source": "payload", "name": "repository.full_name"},
                                {"source": "payload", "name": "ref"}, {"source": "payload", "name": "after"}],
  "pass-environment-to-command": [{"source": "header", "name": "X-Gitea-Delivery", "envname": "DELIVERY_ID"}],
  "trigger-rule": {"and": [
    {"match": {"type": "payload-hmac-sha256", "secret": "{{ getenv "GITEA_HOOK_SECRET" | js }}",
               "parameter": {"source": "header", "name": "X-Gitea-Signature"}}},
    {"match": {"type": "value", "value": "push", "parameter": {"source": "header", "name": "X-Gitea-Event"}}},
    {"match": {"type": "regex", "regex": "^refs/tags/v[0-9]+\\.[0-9]+\\.[0-9]+$",
               "parameter": {"source": "payload", "name": "ref"}}}]}}]
EOF
GITEA_HOOK_SECRET="$secret" webhook -template -hooks "$work/hooks.json.tmpl" -ip 127.0.0.1 -port 19000 >"$work/webhook.log" 2>&1 &
pids+=($!)

CANON_BIND=127.0.0.1:19088 CANON_STATE_DIR="$work/state" CANON_ENROLLMENT="$work/enrollment.yml" \
CANON_WEBHOOK_SECRETS="$secret" CANON_DRONE_SERVER=http://127.0.0.1:9 CANON_DRONE_TOKEN=unused \
CANON_DRONE_REPO=canon/ci CANON_RETRY_BASE=60s CANON_MAX_ATTEMPTS=2 \
  "$listener" >"$work/listener.log" 2>&1 &
lpid=$!
pids+=("$lpid")
for url in http://127.0.0.1:19000/ http://127.0.0.1:19088/healthz; do
  for _ in $(seq 50); do curl -fsS -o /dev/null "$url" 2>/dev/null && break; sleep 0.1; done
done

check() { # url lua expected-status
  local got
  got=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$1" -H 'Content-Type: application/json' \
    -H 'X-Gitea-Event: push' -H "X-Gitea-Signature: $(grep -o '"[0-9a-f]\{64\}"' "$2" | tr -d '"')" \
    --data-binary @"$(grep -o '"/[^"]*\.json"' "$2" | tr -d '"')")
  [ "$got" = "$3" ] || { echo "$1 answered $got, expected $3" >&2; exit 1; }
}
check http://127.0.0.1:19000/hooks/gitea-tag "$work/branch.lua" 403
check http://127.0.0.1:19088/hooks/gitea "$work/branch.lua" 200
check http://127.0.0.1:19088/hooks/gitea "$work/tag.lua" 202

run() { # name url lua
  local out rps p99
  out=$(wrk -t2 -c32 -d"${secs}s" --latency -s "$3" "$2")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  printf '%-44s %12s req/s   p99 %8s   %s\n' "$1" "$rps" "$p99" "$errs"
}
echo "payload: $(wc -c <"$work/branch.json") bytes; 32 connections; ${secs}s per run; $(nproc) CPUs shared with wrk"
run "adnanh/webhook 2.8 verify (rule mismatch 403)" http://127.0.0.1:19000/hooks/gitea-tag "$work/branch.lua"
run "canon verify-and-ack (ignored 200)" http://127.0.0.1:19088/hooks/gitea "$work/branch.lua"
rss() { awk '/VmRSS/ {print $2, $3}' "/proc/$lpid/status"; }
echo "canon-listener RSS after the verify run: $(rss)"
# /readyz waits for the journal's queue to drain: the ignored deliveries of the verify run are
# written behind their answers and would otherwise hold up the durable acks measured next.
curl -fsS -o /dev/null --max-time 300 http://127.0.0.1:19088/readyz
run "canon durable ack (journaled 202)" http://127.0.0.1:19088/hooks/gitea "$work/tag.lua"

# The burst: every tag its own body, so each is signed on its own.
burst_start=$(date +%s%N)
python3 - "$work/tag.json" "$secret" 30000 <<'EOF'
import concurrent.futures, hashlib, hmac, http.client, json, sys
template, secret, count = open(sys.argv[1]).read(), sys.argv[2].encode(), int(sys.argv[3])
def send(part):
    conn, answers = http.client.HTTPConnection("127.0.0.1", 19088), {}
    for i in range(part, count, 32):
        body = template.replace("refs/tags/1.2.0+1.0", "refs/tags/1.2.%d+1.0" % (i + 1)).encode()
        conn.request("POST", "/hooks/gitea", body, {
            "Content-Type": "application/json", "X-Gitea-Event": "push",
            "X-Gitea-Delivery": "burst-%08d" % i,
            "X-Gitea-Signature": hmac.new(secret, body, hashlib.sha256).hexdigest()})
        r = conn.getresponse(); r.read()
        answers[r.status] = answers.get(r.status, 0) + 1
    return answers
total = {}
with concurrent.futures.ThreadPoolExecutor(32) as pool:
    for answers in pool.map(send, range(32)):
        for k, v in answers.items(): total[k] = total.get(k, 0) + v
if total != {202: count}:
    sys.exit("burst answers: %s" % json.dumps(total))
EOF
burst_ms=$(( ($(date +%s%N) - burst_start) / 1000000 ))
curl -fsS -o /dev/null http://127.0.0.1:19088/
curl -fsS -o /dev/null http://127.0.0.1:19088/api/jobs
printf '%-44s %12s ms for 30000 tags, all 202\n' "canon burst of distinct signed tags" "$burst_ms"
echo "canon-listener RSS after the burst, a status page and an /api/jobs read: $(rss)"
echo "canon-listener peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$lpid/status)"
echo "journaled deliveries: $(curl -s http://127.0.0.1:19088/metrics | grep -E 'deliveries_total\{outcome="(duplicate|ignored)"' | tr '\n' ' ')"
