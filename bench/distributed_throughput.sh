#!/usr/bin/env bash
# Data-parallel training speed on this machine (issue 16, section 3): the Amazon recipe
# (distilbert-tiny-init, content, max_length 256, global batch 32, lr 5e-4, dropout) for STEPS steps as
#   1 process x 1 thread  |  mpirun -np 2, 1 thread each (16 rows per rank)  |  1 process x 2 threads
# Prints samples/s (train_results.json), the share of step time the ranks spent blocked on each other
# (communication_wait_seconds / train_runtime), the ratios to 1 process x 1 thread, and samples per
# CPU-second of each whole run (user + system time of every process, by /usr/bin/time): on a shared,
# loaded machine wall-clock figures are stretched by other processes, CPU time much less, and
# 2 ranks' CPU efficiency against one process bounds their speedup on two idle cores (2x that ratio).
#   bench/distributed_throughput.sh      (after scripts/setup.sh; BUILD_DIR, STEPS optional)
# Targets: 2 ranks >= 1.8x one process of one thread, < 10% waiting. The data is prepared once
# (`tuneserve prep`), so no run's figures include tokenizing.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir="${BUILD_DIR:-build}"
steps="${STEPS:-60}"
shared=../shared
for f in "$shared/data/amazon_polarity/train.jsonl" "$shared/models/distilbert-tiny-init/config.json"; do
  [ -f "$f" ] || { echo "distributed_throughput.sh: $f not found (../shared beside the checkout)" >&2; exit 1; }
done
command -v mpirun >/dev/null || { echo "distributed_throughput.sh: mpirun not found (Debian openmpi-bin)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$build_dir/tuneserve" prep --input "$shared/data/amazon_polarity/train.jsonl" --text content --label label \
  --tokenizer "$shared/tokenizers/bert-base-cased" --max-length 256 --output "$work/data" >/dev/null
recipe=(train --progress false --model "$shared/models/distilbert-tiny-init" --tokenizer "$shared/tokenizers/bert-base-cased"
        --train "$work/data" --max-length 256 --learning-rate 5e-4 --warmup-ratio 0.06 --weight-decay 0.01 --seed 0 --max-steps "$steps"
        --save-strategy no --logging-strategy no)
cpu_time() { /usr/bin/time -f "%U %S" -o "$1" "${@:2}" | grep -E "^trained|ranks:" || true; }

echo "== 1 process x 1 thread"
cpu_time "$work/one.cpu" "$build_dir/tuneserve" "${recipe[@]}" --threads 1 --train-batch-size 32 --output-dir "$work/one"
echo "== 2 ranks x 1 thread (mpirun -np 2)"
cpu_time "$work/two.cpu" mpirun --allow-run-as-root --oversubscribe -np 2 "$build_dir/tuneserve" "${recipe[@]}" --threads 1 \
  --train-batch-size 16 --output-dir "$work/two"
echo "== 1 process x 2 threads"
cpu_time "$work/threads.cpu" "$build_dir/tuneserve" "${recipe[@]}" --threads 2 --train-batch-size 32 --output-dir "$work/threads"

python3 - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
runs = [("1 process x 1 thread", "one"), ("2 ranks x 1 thread", "two"), ("1 process x 2 threads", "threads")]
res = {d: json.load(open(os.path.join(work, d, "train_results.json"))) for _, d in runs}
cpu = {d: sum(map(float, open(os.path.join(work, d + ".cpu")).read().split()[-2:])) for _, d in runs}
base = res["one"]["train_samples_per_second"]
samples = {d: res[d]["train_samples_per_second"] * res[d]["train_runtime"] for _, d in runs}
per_cpu = {d: samples[d] / cpu[d] for _, d in runs}
print(f"\n{'':>24} {'samples/s':>10} {'vs 1x1':>7} {'waiting':>8} {'samples/cpu-s':>14} {'vs 1x1':>7}")
for label, d in runs:
    r = res[d]
    wait = r.get("communication_wait_seconds")
    share = f"{100 * wait / r['train_runtime']:7.1f}%" if wait is not None else f"{'-':>8}"
    print(f"{label:>24} {r['train_samples_per_second']:10.1f} {r['train_samples_per_second'] / base:6.2f}x {share} "
          f"{per_cpu[d]:14.1f} {per_cpu[d] / per_cpu['one']:6.2f}x")
two = res["two"]["train_samples_per_second"]
print(f"2 ranks / 1 process x 2 threads: {two / res['threads']['train_samples_per_second']:.2f}x")
with open("/proc/loadavg") as f:
    load = float(f.read().split()[0])
print(f"load average {load:.1f} on {os.cpu_count()} CPUs" + (" (busy: figures are stretched by other processes)" if load > 2.5 else ""))
PY
