#!/usr/bin/env bash
# Accuracy parity with the reference (issue 3 section 6): fine-tunes ../shared/models/distilbert-tiny-init
# on the Amazon reviews with the reference recipe (content only, cased tokenizer, max_length 256,
# 3 epochs, batch 32, AdamW weight decay 0.01 except bias/LayerNorm, linear schedule, 6% warmup,
# grad-norm clip 1.0, default dropouts) for learning rates 5e-4 and 1e-4 and seeds 0, 1, 2, and
# prints each test accuracy, the means against the bars (>= 0.805 and >= 0.755; reference 0.817 and
# 0.770 with PyTorch + transformers) and the wall time of each run.
#   bench/train_accuracy.sh            (after scripts/setup.sh; BUILD_DIR or BIN, THREADS, LRS, SEEDS, OUT optional)
# DTYPES="fp32 bf16" also trains each run with --bf16 (issue 12): per learning rate, the bf16 mean must
# be within 0.5 points of the fp32 mean, and the bf16-trained models' test predictions are compared
# with the fp32-trained ones' (same seed) and with their own fp32 inference (>= 99% agreement).
# Exits non-zero when a mean misses its bar. Each run takes minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir="${BUILD_DIR:-build}"
threads="${THREADS:-2}"
lrs="${LRS:-5e-4 1e-4}"
seeds="${SEEDS:-0 1 2}"
dtypes="${DTYPES:-fp32}"
out="${OUT:-$(mktemp -d)}"
shared=../shared
[ -f "$shared/models/distilbert-tiny-init/model.safetensors" ] || { echo "train_accuracy.sh: ../shared missing" >&2; exit 1; }
# BIN: a prebuilt tuneserve (e.g. a copy, so rebuilding the tree during the hours of runs changes nothing).
if [ -n "${BIN:-}" ]; then tuneserve="$BIN"; else cmake --build "$build_dir" --target tuneserve_cli >/dev/null; tuneserve="$build_dir/tuneserve"; fi

results="$out/results.tsv"
: > "$results"
# The test split's predicted labels of model $1 with --dtype $2, one per line.
/usr/bin/python3 -c 'import json,sys; [print(json.dumps({"text": json.loads(l)["content"]})) for l in open(sys.argv[1])]' \
  "$shared/data/amazon_polarity/test.jsonl" > "$out/test_texts.jsonl"
predictions() {
  "$tuneserve" predict --model "$1" --input "$out/test_texts.jsonl" --dtype "$2" --threads "$threads" \
    2>/dev/null | /usr/bin/python3 -c 'import json,sys; [print(json.loads(l)["label"]) for l in sys.stdin]'
}

for lr in $lrs; do
  for seed in $seeds; do
   for dtype in $dtypes; do
    run="$out/lr${lr}_seed${seed}_${dtype}"
    flag=""
    [ "$dtype" = bf16 ] && flag="--bf16"
    start=$(date +%s)
    "$tuneserve" train --model "$shared/models/distilbert-tiny-init" --tokenizer "$shared/tokenizers/bert-base-cased" \
      --train "$shared/data/amazon_polarity/train.jsonl" --test "$shared/data/amazon_polarity/test.jsonl" \
      --text content --label label --max-length 256 --epochs 3 --train-batch-size 32 --eval-batch-size 64 \
      --learning-rate "$lr" --weight-decay 0.01 --lr-scheduler-type linear --warmup-ratio 0.06 --max-grad-norm 1.0 \
      --seed "$seed" --save-strategy no --logging-steps 25 --threads "$threads" --progress false $flag \
      --output-dir "$run" > "$run.log" 2>&1 || { echo "run lr $lr seed $seed $dtype failed; see $run.log" >&2; exit 1; }
    seconds=$(( $(date +%s) - start ))
    accuracy=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["eval_accuracy"])' "$run/eval_results.json")
    if [ "$dtype" = bf16 ]; then
      predictions "$run" bf16 > "$run.pred_bf16"
      predictions "$run" fp32 > "$run.pred_fp32"
      [ -d "$out/lr${lr}_seed${seed}_fp32" ] && predictions "$out/lr${lr}_seed${seed}_fp32" fp32 > "$out/lr${lr}_seed${seed}_fp32.pred_fp32"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$lr" "$seed" "$dtype" "$accuracy" "$seconds" "$out/lr${lr}_seed${seed}" | tee -a "$results"
   done
  done
done

/usr/bin/python3 - "$results" <<'PY'
import collections, statistics, sys
import os
rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines()]
bars = {"5e-4": (0.805, 0.817), "1e-4": (0.755, 0.770)}
by_run = collections.defaultdict(list)
total = 0
for lr, seed, dtype, acc, secs, prefix in rows:
    by_run[(lr, dtype)].append((int(seed), float(acc), int(secs), prefix))
    total += int(secs)

def agreement(a, b):
    if not (os.path.exists(a) and os.path.exists(b)):
        return None
    x, y = open(a).read().split(), open(b).read().split()
    return sum(p == q for p, q in zip(x, y)) / max(1, len(x)) if len(x) == len(y) and x else None

ok = True
means = {}
print(f"\n{'lr':>6} {'dtype':>5}  {'accuracies (seeds)':<34} {'mean':>6}  {'bar':>6}  {'reference':>9}  {'wall/run':>9}")
for (lr, dtype), runs in by_run.items():
    mean = means[(lr, dtype)] = statistics.mean(a for _, a, _, _ in runs)
    bar, ref = bars.get(lr, (0.0, float("nan")))
    passed = mean >= bar
    ok &= passed
    accs = ", ".join(f"{a:.4f} ({s})" for s, a, _, _ in runs)
    print(f"{lr:>6} {dtype:>5}  {accs:<34} {mean:6.4f}  {bar:6.3f}  {ref:9.3f}  {statistics.mean(t for _, _, t, _ in runs):8.0f}s  {'PASS' if passed else 'FAIL'}")
for (lr, dtype), runs in by_run.items():
    if dtype != "bf16" or (lr, "fp32") not in means:
        continue
    gap = (means[(lr, "bf16")] - means[(lr, "fp32")]) * 100
    passed = abs(gap) <= 0.5
    ok &= passed
    print(f"lr {lr}: bf16 mean - fp32 mean = {gap:+.2f} points (bar: within 0.5)  {'PASS' if passed else 'FAIL'}")
    for seed, _, _, prefix in runs:
        own = agreement(prefix + "_bf16.pred_bf16", prefix + "_bf16.pred_fp32")
        other = agreement(prefix + "_bf16.pred_fp32", prefix + "_fp32.pred_fp32")
        if own is not None:
            ok &= own >= 0.99
            print(f"  seed {seed}: bf16-trained model, bf16 vs fp32 inference: {own:.2%} of the test split agree (bar 99%)"
                  f"{'' if own >= 0.99 else '  FAIL'}")
        if other is not None:
            print(f"  seed {seed}: bf16-trained vs fp32-trained model (fp32 inference): {other:.2%} agree")
print(f"total wall time {total} s for {len(rows)} runs")
sys.exit(0 if ok else 1)
PY
