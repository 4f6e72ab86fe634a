#!/usr/bin/env bash
# Training throughput of full-size distilbert-base-cased (random weights) on this CPU, tuneserve next
# to PyTorch in the same run on the same weights and batches: batch 8 x 128 tokens, and batches of 8
# real Amazon reviews (cased tokenizer, padded to each batch's longest). A step is training forward
# with dropout + backward + clip_grad_norm(1.0) + AdamW. Prints ms/step, samples/s and the ratio.
#   bench/train_throughput.sh     (after scripts/setup.sh; BUILD_DIR, THREADS, COUNT optional)
# The peer is Debian's python3-torch in its best configuration here: the OpenMP build of OpenBLAS
# first on LD_LIBRARY_PATH, OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset for it only, 2 threads,
# multi-tensor (foreach) AdamW. Target (issue 3 section 7): fp32 samples/s >= 2x PyTorch.
# On a busy shared machine run both sides with OMP_WAIT_POLICY=passive and read the cpu ms column.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir="${BUILD_DIR:-build}"
threads="${THREADS:-2}"
count="${COUNT:-6}"   # batches per scenario; the first is a warm-up, medians over the rest
python=/usr/bin/python3
config="${CONFIG:-../shared/goldens/configs/distilbert-base-cased/config.json}"
[ -f "$config" ] || { echo "train_throughput.sh: $config not found (../shared beside the checkout)" >&2; exit 1; }

cmake --build "$build_dir" --target bench_train_throughput >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== random weights for $(basename "$(dirname "$config")") -> $work/model"
"$python" bench/torch_distilbert.py write-model "$work/model" --config "$config" --seed 0
"$build_dir/bench/bench_train_throughput" batches "$work/model" "$work/batches.safetensors" --count "$count"

echo "== PyTorch ($threads threads)"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
  LD_LIBRARY_PATH="/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  "$python" bench/torch_train.py bench "$work/model" "$work/batches.safetensors" --threads "$threads" | tee "$work/torch.json"

echo "== tuneserve ($threads threads)"
OMP_NUM_THREADS="$threads" "$build_dir/bench/bench_train_throughput" run "$work/model" "$work/batches.safetensors" \
  --threads "$threads" | tee "$work/tuneserve.json"

"$python" - "$work/torch.json" "$work/tuneserve.json" <<'PY'
import json, sys
peer, ours = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
diff = abs(peer["parity_loss"] - ours["parity_loss"])
print(f"\nloss parity (same weights, first batch, no dropout): pytorch {peer['parity_loss']:.6f} "
      f"tuneserve {ours['parity_loss']:.6f} |diff| {diff:.2e}: {'OK' if diff <= 1e-4 else 'MISMATCH'}")
theirs = {r["scenario"]: r for r in peer["runs"]}
print(f"{'':>10} {'scenario':>16} {'ms/step':>9} {'samples/s':>10} {'cpu ms':>9}")
for r in ours["runs"]:
    t = theirs[r["scenario"]]
    label = f"{r['scenario']} 8x{'128' if r['scenario'] == 'fixed' else '~%.0f' % r['mean_padded_tokens']}"
    for name, x in (("pytorch", t), ("tuneserve", r)):
        print(f"{name:>10} {label:>16} {x['ms']:9.1f} {x['samples_per_s']:10.2f} {x['cpu_ms']:9.1f}")
    print(f"{'ratio':>10} {'':>16} {'':>9} {r['samples_per_s'] / t['samples_per_s']:9.2f}x {t['cpu_ms'] / r['cpu_ms']:8.2f}x"
          "  (tuneserve / PyTorch throughput; cpu: PyTorch / tuneserve)")
with open("/proc/loadavg") as f:
    load = float(f.read().split()[0])
if load > 2.5:
    print(f"warning: load average {load:.1f}: wall times are stretched by other processes; cpu ms is steadier")
sys.exit(0 if diff <= 1e-4 else 1)
PY
