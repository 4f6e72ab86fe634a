#!/usr/bin/env bash
# Load benchmark of `tuneserve serve` with wrk on loopback: full-size distilbert-base-cased
# (random weights, bench/torch_distilbert.py), CPU. Throughput and p50/p99 latency at concurrency
# 1, 8, 32, 128 with dynamic batching versus --max-batch-requests 1 (the peer: the same server
# without batching, in the same run) and the engine's own ceiling for batching at these request
# lengths (bench_model_forward: batch 1 against 32), then an overload run (far past the sustainable
# rate) sampling the server's RSS each second and counting 503s. DTYPE (default bf16 where the CPU
# has AVX512-BF16, else fp32) is the server's and the ceiling's --dtype. Targets (issue 12): at
# concurrency 32, batched requests/s >= 90% of the engine's batch-32 ceiling at these request lengths,
# with p99 below the unbatched server's. The ceiling is the engine's back-to-back batch-32 passes
# for DURATION seconds just before and just after the batched c=32 point (their mean rate; the
# server's figure is such a mean over the same minute: this VM's speed drifts by 10-15% within
# minutes, so a ceiling measured minutes away can be off by that much either way), replaying the
# token counts of the requests wrk sends, 32 per pass, in order. Also printed: the same at 32 x their
# mean length (equal lengths, one token total: a few % faster than the replay), and the
# best of 5 passes measured at the end (which overstates what the engine sustains). Each point also prints
# wrk's own CPU (it shares the cores with the server) and the server's account from /metrics:
# forward passes, mean inputs per pass, ms per pass, ms in the queue, and ms between pass starts
# (cycle - pass: the model's idle time).
# Each point is measured after WARMUP seconds (default 3) of the same load, unmeasured: its first passes
# at a new batch size grow the activation arena and build oneDNN primitives for new row counts (a
# c=32 point measured cold had a p99 of 106 ms, the same load measured again 84-87 ms).
#   bench/serve_load.sh            (after scripts/setup.sh; DURATION=10 seconds per point, WARMUP, DTYPE)
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir="${BUILD_DIR:-build}"
duration="${DURATION:-10}"
warmup="${WARMUP:-3}"
[[ "$duration" =~ ^[1-9][0-9]*$ ]] || { echo "serve_load.sh: DURATION must be whole seconds >= 1, got '$duration'" >&2; exit 1; }
[[ "$warmup" =~ ^[0-9]+$ ]] || { echo "serve_load.sh: WARMUP must be whole seconds >= 0, got '$warmup'" >&2; exit 1; }
config="${CONFIG:-../shared/goldens/configs/distilbert-base-cased/config.json}"
tokenizer="${TOKENIZER:-../shared/tokenizers/bert-base-cased}"
command -v wrk >/dev/null || { echo "serve_load.sh: wrk is not installed (Debian wrk)" >&2; exit 1; }
[ -f "$config" ] || { echo "serve_load.sh: $config not found (../shared beside the checkout)" >&2; exit 1; }

cmake --build "$build_dir" --target tuneserve_cli bench_model_forward >/dev/null
work="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${DTYPE:-}" ]; then
  DTYPE=fp32
  grep -qw avx512_bf16 /proc/cpuinfo && DTYPE=bf16
fi
dtype="$DTYPE"
echo "== server and ceiling in $dtype"
echo "== random weights for $(basename "$(dirname "$config")") -> $work/model"
/usr/bin/python3 bench/torch_distilbert.py write-model "$work/model" --config "$config" --seed 0 >/dev/null

# start_server NAME FLAGS...: starts the server on a free port, waits for /ping, sets $url.
start_server() {
  local log="$work/$1.log"
  shift
  "$build_dir/tuneserve" serve --model "$work/model" --tokenizer "$tokenizer" --host 127.0.0.1 \
    --port 0 --dtype "$dtype" "$@" >"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 600); do
    port="$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$log" | head -1)"
    if [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/ping" >/dev/null; then
      url="http://127.0.0.1:$port"
      return
    fi
    sleep 0.1
  done
  echo "serve_load.sh: the server did not start; its log:" >&2
  cat "$log" >&2
  exit 1
}

stop_server() {
  kill -TERM "$server_pid"
  wait "$server_pid" || true
  server_pid=""
}

# The server's own account of a point, from /metrics before and after it: forward passes, mean
# inputs per pass, mean ms per pass, mean ms a request waited in the queue, and ms between passes'
# starts (the cycle; with one pass at a time, cycle - pass = the time the model did not run).
# (no series before the first pass: an empty snapshot)
metrics_snapshot() {
  curl -sf "$url/metrics" | grep -E '^tuneserve_(batch_size|inference_duration_seconds|queue_duration_seconds)_(sum|count)' >"$1" || true
}
server_account() {  # BEFORE AFTER SECONDS
  awk -v s="$3" 'FILENAME == ARGV[1] {a[$1] = $2; next} {n = $1; sub(/\{.*/, "", n); v[n] += $2 - a[$1]}
    END { b = v["tuneserve_batch_size_count"]; q = v["tuneserve_queue_duration_seconds_count"]
      if (b > 0) printf "%d %.1f %.1f %.1f %.1f", b, v["tuneserve_batch_size_sum"] / b,
        1000 * v["tuneserve_inference_duration_seconds_sum"] / b, 1000 * v["tuneserve_queue_duration_seconds_sum"] / q, 1000 * s / b
      else printf "0 - - - -" }' "$1" "$2"
}

# run_wrk CONCURRENCY: prints "requests/s p50 p99 non2xx wrk_cpu% passes batch pass_ms queue_ms cycle_ms"
# (wrk_cpu%: wrk's own CPU time over the point, in % of one core: it shares the cores with the server)
run_wrk() {
  local c="$1" threads=$(( $1 < 2 ? 1 : 2 ))
  # The same load for WARMUP seconds first, not measured: a point's first passes at a new batch size
  # grow the activation arena and build the oneDNN primitives of new row counts, and at c=32 those
  # few slow passes hold ~1% of the point's requests, enough to set its p99.
  [ "$warmup" -gt 0 ] && wrk -t"$threads" -c"$c" -d"${warmup}s" --timeout 30s -s bench/serve_post.lua "$url" >/dev/null 2>&1
  metrics_snapshot "$work/m0"
  local TIMEFORMAT='%U %S'
  { time wrk -t"$threads" -c"$c" -d"${duration}s" --timeout 30s --latency -s bench/serve_post.lua "$url" \
    >"$work/wrk.txt" 2>&1; } 2>"$work/wrk_cpu.txt"
  metrics_snapshot "$work/m1"
  local rps p50 p99 bad cpu
  rps="$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")"
  p50="$(awk '$1 == "50%" {print $2}' "$work/wrk.txt")"
  p99="$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")"
  bad="$(awk '/Non-2xx/ {print $5}' "$work/wrk.txt")"
  cpu="$(awk -v d="$duration" '{printf "%.1f", 100 * ($1 + $2) / d}' "$work/wrk_cpu.txt")"
  echo "$rps $p50 $p99 ${bad:-0} $cpu $(server_account "$work/m0" "$work/m1" "$duration")"
}

# Token counts of the requests serve_post.lua sends, in order: text n (n = 1, 2, ...) is review
# n % 4 with " #n" appended, and each of wrk's 2 threads sends the same sequence, so each count twice
# (enough of them to cover a point's requests at c=32, then cycled). The engine's ceiling replays
# them 32 per pass (what a server's batch at c=32 holds); its equal-length ceiling runs 32 x their
# mean, rounded.
requests=$(( duration * 300 > 100 ? duration * 300 : 100 ))
sed -n 's/^  "\(.*\)",$/\1/p' bench/serve_post.lua |
  awk -v N="$requests" '{ r[k++] = $0 } END { for (n = 1; n <= N; n++) printf "{\"text\": \"%s #%d\"}\n", r[n % k], n }' |
  "$build_dir/tuneserve" tokenize --tokenizer "$tokenizer" |
  /usr/bin/python3 -c 'import json, sys
for l in sys.stdin: n = len(json.loads(l)["ids"]); print(n); print(n)' >"$work/lengths.txt"
tokens="$(awk '{ s += $1 } END { printf "%.0f", s / NR }' "$work/lengths.txt")"
# engine ARGS...: the engine's own forward at these request lengths, batch 1 and 32 (no server).
engine() {
  OMP_NUM_THREADS=2 "$build_dir/bench/bench_model_forward" --config "$config" --threads 2 --train 0 \
    --tokens "$tokens" --dtype "$dtype" "$@" 2>&1
}
# engine_sustained: seq/s of the engine's batch-32 passes back to back for DURATION seconds at the
# requests' real lengths (replayed), then at their mean length (32 x $tokens): "REPLAY EQUAL".
engine_sustained() {
  engine --reps 1 --sustain "$duration" --lengths "$work/lengths.txt" |
    awk '$1 == "sustained" { for (i = 2; i <= NF; i++) if ($i == "seq/s") v = $(i - 1)
      if ($2 == "32xreplay:") r = v; else e = v } END { print r, e }'
}

declare -A result
printf "\n%-22s %6s %12s %10s %10s %8s %8s %7s %6s %8s %8s %8s\n" mode conc "requests/s" p50 p99 non-2xx \
  "wrk cpu%" passes batch "pass ms" "queue ms" "cycle ms"
for mode in batched unbatched; do
  if [ "$mode" = batched ]; then
    start_server "$mode" --max-batch-requests 64 --max-batch-delay-ms 5 --job-queue-size 1024
  else
    start_server "$mode" --max-batch-requests 1 --job-queue-size 1024
  fi
  for c in 1 8 32 128; do
    [ "$mode" = batched ] && [ "$c" = 32 ] && read -r replay_before sustained_before < <(engine_sustained)
    read -r rps p50 p99 bad cpu passes batch pass queue cycle < <(run_wrk "$c")
    [ "$mode" = batched ] && [ "$c" = 32 ] && read -r replay_after sustained_after < <(engine_sustained)
    result[$mode,$c]="$rps"
    result[$mode,$c,p99]="$p99"
    printf "%-22s %6s %12s %10s %10s %8s %8s %7s %6s %8s %8s %8s\n" "$mode" "$c" "$rps" "$p50" "$p99" "$bad" \
      "$cpu" "$passes" "$batch" "$pass" "$queue" "$cycle"
  done
  stop_server
done
awk -v b="${result[batched,32]}" -v u="${result[unbatched,32]}" \
  'BEGIN { printf "\nconcurrency 32: batching gives %.2fx the requests/s (the engine ceiling below bounds it)\n", b / u }'

# What batching can add at all here: the engine's own forward at these request lengths, one input
# against 32 packed together (no HTTP, no queue). The server's ratio cannot exceed this one.
engine --reps 5 >"$work/ceiling.txt"
awk -v t="$tokens" -v d="$dtype" '$2 == "fast" && $1 ~ /^1x/ {one = $5} $2 == "fast" && $1 ~ /^32x/ {many = $5}
  END { if (one > 0) printf "engine ceiling (%s) at %d tokens per request: batch 1 %.1f seq/s, batch 32 %.1f seq/s: batching can add at most %.2fx\n", d, t, one, many, many / one }' \
  "$work/ceiling.txt"
# wrk's latencies carry their unit (us, ms, s, m): in ms.
ms() { awk -v x="$1" 'BEGIN { v = x + 0; u = x; sub(/^[0-9.]+/, "", u);
  printf "%.2f", u == "us" ? v / 1000 : u == "s" ? v * 1000 : u == "m" ? v * 60000 : v }'; }
ceiling32="$(awk '$2 == "fast" && $1 ~ /^32x/ {print $5}' "$work/ceiling.txt")"
awk -v b="${result[batched,32]}" -v c="$ceiling32" -v s0="$sustained_before" -v s1="$sustained_after" \
  -v r0="$replay_before" -v r1="$replay_after" -v t="$tokens" \
  -v p="$(ms "${result[batched,32,p99]}")" -v q="$(ms "${result[unbatched,32,p99]}")" -v d="$dtype" 'BEGIN {
  r = (r0 + r1) / 2; s = (s0 + s1) / 2
  printf "concurrency 32, %s: batched %.1f requests/s = %.0f%% of the engine'"'"'s batch-32 rate at these request lengths sustained around that point %.1f seq/s (%.1f before, %.1f after; target >= 90%%); %.0f%% of its rate at 32 x %d tokens %.1f seq/s (%.1f before, %.1f after); %.0f%% of its best pass %.1f seq/s (best of 5 at 32 x %d, measured at the end); p99 %.0f ms batched vs %.0f ms unbatched (target: below)\n", d, b, 100 * b / r, r, r0, r1, 100 * b / s, t, s, s0, s1, 100 * b / c, c, t, p, q }'

echo
echo "== overload: 512 connections against --job-queue-size 64, RSS sampled each second"
start_server overload --max-batch-requests 64 --max-batch-delay-ms 5 --job-queue-size 64
rss() { awk '/VmRSS/ {print $2}' "/proc/$server_pid/status"; }
echo "RSS before: $(rss) kB"
(for _ in $(seq 1 "$((duration * 2))"); do rss; sleep 1; done) >"$work/rss.txt" &
sampler=$!
wrk -t2 -c512 -d"$((duration * 2))s" --timeout 30s --latency -s bench/serve_post.lua "$url" >"$work/wrk.txt" 2>&1 || true
wait "$sampler" || true
grep -E "Requests/sec|Non-2xx|50%|99%|Socket errors" "$work/wrk.txt" || true
echo "RSS kB during the run (min / max): $(sort -n "$work/rss.txt" | head -1) / $(sort -n "$work/rss.txt" | tail -1)"
# The queue admitted during the overload still drains; then the server answers 200 again.
start=$(date +%s%N)
code=000
for _ in $(seq 1 120); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url/invocations" \
    -H 'Content-Type: application/json' -d '{"inputs": "still serving?"}')
  [ "$code" = 200 ] && break
  sleep 0.5
done
echo "after the overload: /invocations answers $code, $(( ($(date +%s%N) - start) / 1000000 )) ms after wrk stopped"
echo "RSS after: $(rss) kB"
stop_server
