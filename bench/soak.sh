#!/usr/bin/env bash
# Soak test of `tuneserve serve` (not in CI; issue 11): DURATION seconds (default 600) of mixed
# valid, invalid and oversized requests from wrk at CONNECTIONS (default 64) connections
# (bench/soak.lua), with management calls between them every cycle: load and unload a second model
# from the store and scale the workers 1 -> 4 -> 1. Every 30 s it prints the server's RSS (sampled
# at the same point of the cycle: workers back at 1, second model unloaded) and requests served.
# Fails when the server dies, answers any 5xx other than 503/504, or its RSS at the end is more
# than 5% (+32 MB) above its RSS after the first minute.
#   bench/soak.sh                 BIN=build SHARED=../shared MODEL=models/distilbert-tiny-init
#   DURATION=120 bench/soak.sh    a shorter run
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build}
SHARED=${SHARED:-../shared}
MODEL=${MODEL:-$SHARED/models/distilbert-tiny-init}
TOKENIZER=${TOKENIZER:-$SHARED/tokenizers/bert-base-cased}
DURATION=${DURATION:-600}
CONNECTIONS=${CONNECTIONS:-64}
CYCLE=30
for tool in wrk curl; do command -v $tool >/dev/null || { echo "soak: $tool is not installed" >&2; exit 1; }; done
[ -x "$BIN/tuneserve" ] || { echo "soak: no $BIN/tuneserve (build first)" >&2; exit 1; }
[ -d "$MODEL" ] || { echo "soak: no model at $MODEL" >&2; exit 1; }

work=$(mktemp -d)
server_pid=""; wrk_pid=""
cleanup() {
  [ -n "$wrk_pid" ] && kill "$wrk_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# The second model: links to the same files (and its tokenizer beside them) in a store of its own.
mkdir -p "$work/store/second"
ln -s "$(realpath "$MODEL")"/* "$(realpath "$TOKENIZER")"/* "$work/store/second/"
payload_mb=1

"$BIN/tuneserve" serve --model "$MODEL" --tokenizer "$TOKENIZER" --host 127.0.0.1 --port 0 \
  --management-port 0 --model-store "$work/store" --max-payload-mb $payload_mb --response-timeout 10 \
  --max-batch-tokens 8192 --threads 1 >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 600); do
  [ "$(grep -c 'http://' "$work/server.out" 2>/dev/null || true)" -ge 2 ] && break
  sleep 0.1
done
port=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9]*\).*/\1/p' "$work/server.out")
mport=$(sed -n 's/.*management API on http:\/\/[^:]*:\([0-9]*\).*/\1/p' "$work/server.out")
[ -n "$port" ] && [ -n "$mport" ] || { echo "soak: the server did not start" >&2; cat "$work/server.err" >&2; exit 1; }
until curl -sf "http://127.0.0.1:$port/ping" >/dev/null; do
  kill -0 $server_pid 2>/dev/null || { echo "soak: the server exited" >&2; cat "$work/server.err" >&2; exit 1; }
  sleep 0.2
done
echo "soak: tuneserve serve (pid $server_pid) on port $port, management $mport; $CONNECTIONS connections for ${DURATION}s"
echo "soak: $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"

SOAK_PAYLOAD_BYTES=$((payload_mb * 1024 * 1024)) wrk -t 2 -c "$CONNECTIONS" -d "${DURATION}s" --timeout 20s \
  -s bench/soak.lua "http://127.0.0.1:$port" >"$work/wrk.out" 2>&1 &
wrk_pid=$!

mgmt() {  # METHOD PATH [BODY]: records the status code
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -X "$1" "http://127.0.0.1:$mport$2" ${3:+-H 'Content-Type: application/json' -d "$3"} || echo 000)
  echo "$code" >>"$work/mgmt.codes"
}
rss_mb() { awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$server_pid/status"; }
served() {
  curl -s "http://127.0.0.1:$port/metrics" |
    awk '/^tuneserve_requests_total/ {n += $NF} END {printf "%d", n}'
}

start=$(date +%s)
elapsed=0
samples=()
while [ $elapsed -lt "$DURATION" ]; do
  kill -0 $server_pid 2>/dev/null || { echo "soak: FAIL: the server died" >&2; cat "$work/server.err" >&2; exit 1; }
  cycle_start=$(date +%s)
  mgmt PUT "/models/model?workers=4"
  mgmt POST /models '{"name": "second", "path": "second", "workers": 2}'
  sleep 5
  mgmt GET /models
  mgmt POST /models '{"name": "second", "path": "second"}'   # already loaded: 409
  mgmt POST /models '{"name": "x", "path": "../etc"}'        # outside the store: 403
  mgmt PUT "/models/model?workers=100000"                     # out of range: 400
  sleep 5
  mgmt DELETE /models/second
  mgmt PUT "/models/model?workers=1"
  now=$(date +%s)
  sleep $((CYCLE - (now - cycle_start) > 0 ? CYCLE - (now - cycle_start) : 1))
  elapsed=$(($(date +%s) - start))
  rss=$(rss_mb)
  samples+=("$rss")
  printf 'soak: t=%4ds rss=%5d MB served=%s\n' "$elapsed" "$rss" "$(served)"
done
wait $wrk_pid || true
wrk_pid=""
kill -0 $server_pid 2>/dev/null || { echo "soak: FAIL: the server died" >&2; cat "$work/server.err" >&2; exit 1; }

echo "soak: wrk:"
sed 's/^/  /' "$work/wrk.out"
codes=$(grep '^codes ' "$work/wrk.out" | cut -d' ' -f2-)
mgmt_codes=$(sort "$work/mgmt.codes" | uniq -c | awk '{printf "%s=%s ", $2, $1}')
echo "soak: requests served $(served); answers by code: $codes"
echo "soak: management calls by code: $mgmt_codes"

status=0
bad=$(echo "$codes $mgmt_codes" | tr ' ' '\n' | awk -F= '$1 >= 500 && $1 != 503 && $1 != 504 {print}')
if [ -n "$bad" ]; then echo "soak: FAIL: 5xx answers other than 503/504: $bad"; status=1; fi
echo "$mgmt_codes" | grep -q '000=' && { echo "soak: FAIL: a management call got no answer"; status=1; }
# The first minute warms the arenas and caches up; from then on RSS must not grow.
if [ ${#samples[@]} -ge 3 ]; then
  base=${samples[1]}
  last=${samples[-1]}
  limit=$((base + base / 20 + 32))
  echo "soak: RSS after the first minute ${base} MB, at the end ${last} MB (limit ${limit} MB)"
  if [ "$last" -gt "$limit" ]; then echo "soak: FAIL: RSS grew"; status=1; fi
fi
# A clean stop: SIGTERM drains and exits 0.
kill -TERM $server_pid
if wait $server_pid; then echo "soak: SIGTERM: exit 0"; else echo "soak: FAIL: exit $? after SIGTERM"; status=1; fi
server_pid=""
[ $status -eq 0 ] && echo "soak: PASS"
exit $status
