#!/usr/bin/env bash
# The portable build on the CPUs it promises to run on (issue 10), after scripts/setup.sh (.ci/run):
#   1. the AVX2 kernel path on this CPU: the kernel, model and training tests with TUNESERVE_CPU_ISA=avx2;
#   2. an AVX2-only CPU: qemu-user's Haswell model (QEMU emulates AVX2, not AVX-512) runs
#      `tuneserve --version`, the kernel tests (finite-difference gradients), the model's golden and
#      gradient tests, the trainer's golden optimizer steps, and a `predict` whose scores must equal
#      the native run's within 1e-5.
#   scripts/check_cpu_levels.sh      (BUILD_DIR, SHARED optional)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD_DIR:-build}"
shared="${SHARED:-../shared}"

# QEMU warns once per CPU feature of the model that TCG lacks (pcid, x2apic, ...): noise here.
haswell() {
  qemu-x86_64 -cpu Haswell "$@" 2> >(grep -v "^qemu-x86_64: warning: TCG doesn't support requested feature" >&2)
}

echo "== AVX2 kernels on this CPU (TUNESERVE_CPU_ISA=avx2): kernel, model and training tests"
TUNESERVE_CPU_ISA=avx2 ctest --test-dir "$build" -L 'kernels|model|train' -j"$(nproc)" --output-on-failure

echo "== an AVX2-only CPU: qemu-x86_64 -cpu Haswell"
version="$(haswell "$build/tuneserve" --version)"
echo "$version"
grep -q "^kernels avx2 (CPU: avx2), oneDNN avx2$" <<<"$version" ||
  { echo "check_cpu_levels: expected the avx2 kernels and oneDNN avx2 under -cpu Haswell" >&2; exit 1; }
# CpuIsa.* run `tuneserve` as a child, which qemu-user does not emulate: they ran natively above.
haswell "$build/tests/test_kernels" --gtest_brief=1 --gtest_filter=-CpuIsa.*
# LoadGuards.* run `tuneserve` as a child too, and bound its peak memory, which a child started from
# under qemu-user does not show as it is natively; they ran natively above.
haswell "$build/tests/test_model" --gtest_brief=1 --gtest_filter=-LoadGuards.*
haswell "$build/tests/test_train" --gtest_brief=1 --gtest_filter='Trajectory*:*Trajectory*:Optimizer.*'

model="$shared/models/distilbert-tiny-init"
if [ ! -d "$model" ]; then
  echo "check_cpu_levels: $model not found; predict under qemu skipped (../shared beside the checkout)"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
texts=("This is a very good product!" "Terrible. It broke after two days and support never answered."
       "Works as described, nothing more.")
args=(predict --model "$model" --tokenizer "$shared/tokenizers/bert-base-cased" --top-k all)
"$build/tuneserve" "${args[@]}" "${texts[@]}" >"$work/native.json"
haswell "$build/tuneserve" "${args[@]}" "${texts[@]}" >"$work/haswell.json"
python3 - "$work/native.json" "$work/haswell.json" <<'EOF'
import json, sys
native, haswell = (json.load(open(p)) for p in sys.argv[1:])
worst = 0.0
for a, b in zip(native, haswell, strict=True):
    assert [x["label"] for x in a] == [x["label"] for x in b], (a, b)
    worst = max([worst] + [abs(x["score"] - y["score"]) for x, y in zip(a, b)])
assert worst <= 1e-5, f"scores differ by {worst}"
print(f"predict under -cpu Haswell: same labels and order as native, scores within {worst:.1e}")
EOF
