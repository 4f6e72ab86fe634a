#!/usr/bin/env bash
# The one GPU check of issue 5, for a fresh GPU machine (CUDA 13, PyTorch + transformers, no
# internet, Debian packages possibly missing), in under 8 minutes: build the CUDA backend, its
# tests and the tuneserve binary, run `ctest -L cuda`, time the CUDA kernels, run the PyTorch +
# transformers side of the benchmark table, then tuneserve itself on the GPU (`--device cuda`):
# predict against the CPU's scores, the issue-3 accuracy recipe, training samples/s next to the
# peer's. Each step is bounded and a failed step does not stop the later ones; the exit status is
# that of the tests.
#   bench/gpu_check.sh                  (from the repository root; OUT=dir keeps logs and JSON there)
#   SHARED=../shared BUILD_DIR=build-cuda JOBS=16 SECONDS_PER_WORKLOAD=6 bench/gpu_check.sh
#   BIN=dir bench/gpu_check.sh          binaries from dir instead of building or unpacking the bundle
#   STEPS="predict accuracy speed" bench/gpu_check.sh   only these steps (default: all, in this order:
#       build tests kernels torch hfload predict accuracy speed); without `build` the prebuilt bundle
#       is used, so a check can be split over two calls on the same machine
#   bench/gpu_check.sh prepare          on a development machine first: ../shared and build outputs do
#                                       not travel, so copy what the check reads into .gpu_shared/ and pack
#                                       prebuilt binaries into build-cuda-bundle/ (both git-ignored); then
#                                       run `SHARED=.gpu_shared bench/gpu_check.sh` on the GPU machine,
#                                       carrying build-cuda-bundle and .gpu_shared, timeout 540 s.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = prepare ]; then
  src="${SHARED:-../shared}"
  for f in data/amazon_polarity/train.jsonl data/amazon_polarity/test.jsonl tokenizers/bert-base-cased/tokenizer.json \
           tokenizers/bert-base-cased/vocab.txt tokenizers/bert-base-cased/tokenizer_config.json \
           tokenizers/bert-base-cased/special_tokens_map.json goldens/configs/distilbert-base-cased/config.json \
           models/distilbert-tiny-init/config.json models/distilbert-tiny-init/model.safetensors; do
    mkdir -p ".gpu_shared/$(dirname "$f")" && cp "$src/$f" ".gpu_shared/$f" || exit 1
  done
  # A model trained here by the CPU build, its tokenizer, texts and `tuneserve predict` scores: the
  # GPU machine has transformers, which checks that the saved directory loads and scores the same.
  hf=.gpu_shared/hf_load
  rm -rf "$hf" && mkdir -p "$hf"
  [ -x build/tuneserve ] || { echo "prepare: build/tuneserve missing (run scripts/setup.sh first)" >&2; exit 1; }
  build/tuneserve train --model "$src/models/distilbert-tiny-init" --tokenizer "$src/tokenizers/bert-base-cased" \
    --train "$src/data/amazon_polarity/train.jsonl" --text content --label label --label-names negative,positive \
    --max-length 128 --max-steps 60 --train-batch-size 16 --learning-rate 5e-4 --save-strategy no --progress false \
    --output-dir "$hf/model" >"$hf/train.log" 2>&1 || { cat "$hf/train.log" >&2; exit 1; }
  head -n 64 "$src/data/amazon_polarity/test.jsonl" | "$(command -v /usr/bin/python3 || command -v python3)" -c '
import json, sys
for line in sys.stdin:
    print(json.dumps({"text": json.loads(line)["content"]}))' >"$hf/texts.jsonl" || exit 1
  build/tuneserve predict --model "$hf/model" --input "$hf/texts.jsonl" --output "$hf/tuneserve.jsonl" --top-k all || exit 1
  TARGETS="test_cuda bench_cuda_kernels tuneserve_cli" BUNDLE=build-cuda-bundle scripts/build_cuda.sh || exit 1
  echo "ready: run 'SHARED=.gpu_shared bench/gpu_check.sh' there, carry build-cuda-bundle and .gpu_shared"
  exit 0
fi

out="${OUT:-build-cuda/gpu_check}"
mkdir -p "$out"
build_dir="${BUILD_DIR:-build-cuda}"
shared="${SHARED:-../shared}"
[ -d "$shared" ] || { [ -d shared ] && shared=shared; }
python="${PYTHON:-$(command -v python3 || echo /usr/bin/python3)}"
start=$(date +%s)
step() { echo; echo "== [$(($(date +%s) - start)) s] $*"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | head -5
/usr/local/cuda/bin/nvcc --version 2>&1 | tail -2
cmake --version 2>&1 | head -1
"$python" -c 'import torch as t; print("torch", t.__version__, "cuda", t.version.cuda, t.cuda.is_available())' 2>&1
"$python" -c 'import transformers; print("transformers", transformers.__version__)' 2>&1 | tail -1
echo "shared: $shared $([ -d "$shared" ] && echo present || echo "MISSING: the benchmark uses built-in settings")"

# The CPU build's Debian packages (scripts/setup.sh); without internet they cannot be installed here,
# so report them: CMake's configure names the first one it cannot find.
step "build dependencies"
missing=()
for p in cmake ninja-build libdnnl-dev libutf8proc-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev \
         zlib1g-dev libgtest-dev libgmock-dev libboost1.81-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "missing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ] &&
     timeout 60 apt-get install -y -q --no-install-recommends "${missing[@]}" >"$out/apt.log" 2>&1; then
    echo "installed them from the local apt cache"
  else
    echo "could not install them (no network?); the configure below says which one stops the build"
  fi
else
  echo "all present"
fi

steps="${STEPS:-build tests kernels torch hfload predict accuracy speed}"
want() { [[ " $steps " == *" $1 "* ]]; }

bin="${BIN:-}"  # BIN=dir: binaries already there (no build, no bundle)
if [ -n "$bin" ]; then
  echo "using the binaries in $bin"
elif want build; then
  step "build: scripts/build_cuda.sh -> $build_dir (kernels, test_cuda, bench_cuda_kernels, tuneserve)"
  if BUILD_DIR="$build_dir" JOBS="${JOBS:-$(nproc)}" TARGETS="test_cuda bench_cuda_kernels tuneserve_cli" \
     timeout 330 scripts/build_cuda.sh >"$out/build.log" 2>&1; then
    tail -n 3 "$out/build.log"
    bin="$build_dir/bin"
    mkdir -p "$bin"
    for t in test_cuda bench_cuda_kernels tuneserve; do
      ln -sf "$(realpath "$(find "$build_dir" -name "$t" -type f -perm -u+x | head -n 1)")" "$bin/$t"
    done
  else
    grep -E "Could NOT find|not found|Error" "$out/build.log" | head -n 5 || tail -n 3 "$out/build.log"
    echo "BUILD FAILED here (full log: $out/build.log)"
  fi
fi
if [ -z "$bin" ]; then
  # Prebuilt binaries made on a development machine: BUNDLE=build-cuda-bundle scripts/build_cuda.sh
  bundle="${BUNDLE:-build-cuda-bundle}/bundle.tar.xz"
  if [ -f "$bundle" ]; then
    mkdir -p /tmp/tuneserve-bundle && tar -C /tmp/tuneserve-bundle -xJf "$bundle"
    bin=/tmp/tuneserve-bundle/bin
    export LD_LIBRARY_PATH="/tmp/tuneserve-bundle/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "using the prebuilt binaries of $bundle"
  else
    echo "no prebuilt $bundle either: CUDA tests, kernel timings and tuneserve on the GPU cannot run"
  fi
fi

test_rc=1
if [ -n "$bin" ] && want tests; then
  step "tests: test_cuda = ctest -L cuda (each CUDA op against its CPU twin)"
  timeout 150 "$bin/test_cuda" >"$out/test_cuda.log" 2>&1
  test_rc=$?
  grep -A 6 "Failure" "$out/test_cuda.log" | head -n 120  # each message names the op, shape, worst element
  grep -E "^\[ +(OK|FAILED) +\] [A-Za-z]" "$out/test_cuda.log" | head -n 40  # per test, with its time
  grep -E "^\[(==========|  PASSED  |  FAILED  |  SKIPPED ) *\] [0-9]+ test" "$out/test_cuda.log"
  grep -q "SKIPPED" "$out/test_cuda.log" && grep -m 1 "no usable GPU" "$out/test_cuda.log"
fi
if [ -n "$bin" ] && want kernels; then
  step "tuneserve CUDA kernels: bench_cuda_kernels"
  timeout 90 "$bin/bench_cuda_kernels" 2>&1 | tee "$out/kernels.txt"
fi

if want torch; then
  step "PyTorch + transformers peer: bench/torch_gpu.py (fine-tune and inference workloads of the table)"
  timeout 200 "$python" bench/torch_gpu.py --shared "$shared" --seconds "${SECONDS_PER_WORKLOAD:-6}" 2>&1 |
    tee "$out/torch_gpu.txt" | grep -v '^{'
  tail -n 1 "$out/torch_gpu.txt" >"$out/torch_gpu.json"
fi

if [ -d "$shared/hf_load/model" ] && want hfload; then
  step "a model saved by tuneserve train loads in transformers and scores as tuneserve predict did"
  timeout 60 "$python" bench/hf_load_check.py "$shared/hf_load/model" "$shared/hf_load/texts.jsonl" \
    "$shared/hf_load/tuneserve.jsonl" 2>&1 | tee "$out/hf_load.txt"
fi

ts="$bin/tuneserve"
if [ -x "$ts" ] && want predict && [ -f "$shared/hf_load/tuneserve.jsonl" ]; then
  step "tuneserve predict --device cuda on the texts prepared here, against the CPU build's scores"
  timeout 90 "$ts" predict --device cuda --model "$shared/hf_load/model" --input "$shared/hf_load/texts.jsonl" \
    --output "$out/predict_cuda.jsonl" --top-k all 2>&1 | tail -n 5
  "$python" - "$shared/hf_load/tuneserve.jsonl" "$out/predict_cuda.jsonl" "${PREDICT_ATOL:-1e-3}" <<'PY'
import json, sys
cpu = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
try:
    gpu = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
except OSError as e:
    sys.exit(f"predict on cuda wrote nothing ({e})")
atol = float(sys.argv[3])
labels = sum(a[0]["label"] != b[0]["label"] for a, b in zip(cpu, gpu))
worst = max((abs(x["score"] - y["score"]) for a, b in zip(cpu, gpu) for x, y in zip(a, b)), default=float("nan"))
ok = len(cpu) == len(gpu) and labels == 0 and worst <= atol
print(f"{len(gpu)} of {len(cpu)} texts; top label differs on {labels}; max |score diff| {worst:.2e} "
      f"(atol {atol}): {'OK' if ok else 'MISMATCH'}")
PY
fi

recipe=(--tokenizer "$shared/tokenizers/bert-base-cased" --train "$shared/data/amazon_polarity/train.jsonl"
        --text content --label label --save-strategy no --progress false --device cuda)
if [ -x "$ts" ] && want accuracy && [ -f "$shared/models/distilbert-tiny-init/model.safetensors" ]; then
  step "tuneserve train --device cuda: issue 3's accuracy recipe (distilbert-tiny-init, lr 5e-4, seeds 0 1 2; bar: mean >= 0.805)"
  for seed in 0 1 2; do
    run="$out/accuracy_seed$seed"
    t0=$(date +%s)
    timeout 100 "$ts" train --model "$shared/models/distilbert-tiny-init" "${recipe[@]}" \
      --test "$shared/data/amazon_polarity/test.jsonl" --max-length 256 --epochs 3 --train-batch-size 32 \
      --eval-batch-size 64 --learning-rate 5e-4 --weight-decay 0.01 --warmup-ratio 0.06 --max-grad-norm 1.0 \
      --seed "$seed" --logging-steps 25 --output-dir "$run" >"$run.log" 2>&1 || { tail -n 3 "$run.log"; continue; }
    echo "seed $seed: $(grep -m 1 '^eval:' "$run.log") ($(($(date +%s) - t0)) s)"
  done
  "$python" - "$out" <<'PY'
import json, os, sys
acc = []
for seed in (0, 1, 2):
    path = os.path.join(sys.argv[1], f"accuracy_seed{seed}", "eval_results.json")
    if os.path.exists(path):
        acc.append(json.load(open(path))["eval_accuracy"])
if len(acc) < 3:
    print(f"only {len(acc)} of 3 runs finished: bar not judged")
else:
    mean = sum(acc) / 3
    print(f"mean accuracy {mean:.4f} over seeds 0 1 2 (CPU build: 0.8152; PyTorch: 0.817): "
          f"{'PASS' if mean >= 0.805 else 'FAIL'} (bar 0.805)")
PY
fi

if [ -x "$ts" ] && want speed && [ -f "$shared/goldens/configs/distilbert-base-cased/config.json" ]; then
  step "tuneserve train --device cuda: samples/s of full-size distilbert-base-cased on Amazon texts, next to the peer"
  full="$out/distilbert-base-random"
  # Random weights as the peer uses; saved by transformers, so this step also needs torch + transformers.
  timeout 60 "$python" - "$shared/goldens/configs/distilbert-base-cased/config.json" "$full" <<'PY' 2>&1 | tail -n 2
import sys, torch
from transformers import DistilBertConfig, DistilBertForSequenceClassification
torch.manual_seed(0)
DistilBertForSequenceClassification(DistilBertConfig.from_json_file(sys.argv[1])).save_pretrained(sys.argv[2])
PY
  for spec in "32 60 20" "128 15 5"; do
    read -r batch steps every <<<"$spec"
    run="$out/speed_b$batch"
    timeout 120 "$ts" train --model "$full" "${recipe[@]}" --max-length 512 --train-batch-size "$batch" \
      --max-steps "$steps" --logging-steps "$every" --learning-rate 5e-5 --output-dir "$run" >"$run.log" 2>&1 ||
      tail -n 3 "$run.log"
  done
  "$python" - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
peer = {}
try:
    peer = {r["workload"]: r for r in json.load(open(os.path.join(out, "torch_gpu.json"))).get("results", [])}
except (OSError, ValueError, AttributeError):
    pass
for batch, workload in ((32, "train_real_b32"), (128, "train_real_b128")):
    path = os.path.join(out, f"speed_b{batch}", "metrics.jsonl")
    logs = [json.loads(l) for l in open(path)] if os.path.exists(path) else []
    logs = [r for r in logs if "samples_per_second" in r]
    if not logs:
        print(f"batch {batch}: no training log ({path})")
        continue
    ours = logs[-1]["samples_per_second"]  # the last window: warm
    theirs = peer.get(workload, {}).get("samples_per_s")
    ratio = f"{ours / theirs:.2f}x of transformers' {theirs:.1f}" if theirs else "peer not measured in this run"
    print(f"batch {batch}, Amazon real lengths, unpadded: tuneserve {ours:.1f} samples/s over the log window "
          f"ending at step {logs[-1]['step']} ({ratio} {workload})")
PY
fi

step "done in $(($(date +%s) - start)) s; logs in $out"
cat <<'EOF'
Table (issue 5 section 4): the transformers column is torch_gpu.py's samples/s (train_real_b32,
train_real_b128, train_pad512_b32, infer_b256x128_bf16) and latency (infer_b1x128_*); the tuneserve
training column is the "speed" step above (fp32 on the GPU: no bf16 products yet). Inference on the
GPU is timed by nothing here yet.
EOF
exit "$test_rc"
