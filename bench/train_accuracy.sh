#!/usr/bin/env bash
# Accuracy parity with the reference (issue 3 section 6): fine-tunes ../shared/models/distilbert-tiny-init
# on the Amazon reviews with the reference recipe (content only, cased tokenizer, max_length 256,
# 3 epochs, batch 32, AdamW weight decay 0.01 except bias/LayerNorm, linear schedule, 6% warmup,
# grad-norm clip 1.0, default dropouts) for learning rates 5e-4 and 1e-4 and seeds 0, 1, 2, and
# prints each test accuracy, the means against the bars (>= 0.805 and >= 0.755; reference 0.817 and
# 0.770 with PyTorch + transformers) and the wall time of each run.
#   bench/train_accuracy.sh            (after scripts/setup.sh; BUILD_DIR, THREADS, LRS, SEEDS, OUT optional)
# Exits non-zero when a mean misses its bar. Each run takes minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir="${BUILD_DIR:-build}"
threads="${THREADS:-2}"
lrs="${LRS:-5e-4 1e-4}"
seeds="${SEEDS:-0 1 2}"
out="${OUT:-$(mktemp -d)}"
shared=../shared
[ -f "$shared/models/distilbert-tiny-init/model.safetensors" ] || { echo "train_accuracy.sh: ../shared missing" >&2; exit 1; }
cmake --build "$build_dir" --target tuneserve_cli >/dev/null

results="$out/results.tsv"
: > "$results"
for lr in $lrs; do
  for seed in $seeds; do
    run="$out/lr${lr}_seed${seed}"
    start=$(date +%s)
    "$build_dir/tuneserve" train --model "$shared/models/distilbert-tiny-init" --tokenizer "$shared/tokenizers/bert-base-cased" \
      --train "$shared/data/amazon_polarity/train.jsonl" --test "$shared/data/amazon_polarity/test.jsonl" \
      --text content --label label --max-length 256 --epochs 3 --train-batch-size 32 --eval-batch-size 64 \
      --learning-rate "$lr" --weight-decay 0.01 --lr-scheduler-type linear --warmup-ratio 0.06 --max-grad-norm 1.0 \
      --seed "$seed" --save-strategy no --logging-steps 25 --threads "$threads" --progress false \
      --output-dir "$run" > "$run.log" 2>&1 || { echo "run lr $lr seed $seed failed; see $run.log" >&2; exit 1; }
    seconds=$(( $(date +%s) - start ))
    accuracy=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["eval_accuracy"])' "$run/eval_results.json")
    printf '%s\t%s\t%s\t%s\n' "$lr" "$seed" "$accuracy" "$seconds" | tee -a "$results"
  done
done

/usr/bin/python3 - "$results" <<'PY'
import collections, statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines()]
bars = {"5e-4": (0.805, 0.817), "1e-4": (0.755, 0.770)}
by_lr = collections.defaultdict(list)
total = 0
for lr, seed, acc, secs in rows:
    by_lr[lr].append((int(seed), float(acc), int(secs)))
    total += int(secs)
ok = True
print(f"\n{'lr':>6}  {'accuracies (seeds)':<34} {'mean':>6}  {'bar':>6}  {'reference':>9}  {'wall/run':>9}")
for lr, runs in by_lr.items():
    mean = statistics.mean(a for _, a, _ in runs)
    bar, ref = bars.get(lr, (0.0, float("nan")))
    passed = mean >= bar
    ok &= passed
    accs = ", ".join(f"{a:.4f} ({s})" for s, a, _ in runs)
    print(f"{lr:>6}  {accs:<34} {mean:6.4f}  {bar:6.3f}  {ref:9.3f}  {statistics.mean(t for *_, t in runs):8.0f}s  {'PASS' if passed else 'FAIL'}")
print(f"total wall time {total} s for {len(rows)} runs")
sys.exit(0 if ok else 1)
PY
