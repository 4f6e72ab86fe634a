#!/usr/bin/env bash
# The installed package as another project sees it (ctest: install.consumer):
#   - `cmake --install BUILD --prefix P` lays out bin/, lib/ (libtuneserve.so, CMake package,
#     pkg-config file) and include/tuneserve/, with no path into the source or build tree;
#   - copies of examples/api and examples/handler, outside the source tree, build against P alone
#     (find_package(tuneserve)), and classify.cpp builds with pkg-config too;
#   - classify gives the labels and scores `tuneserve predict` gives, fine_tune trains a few steps
#     into a model classify loads, and bad input fails with a message, not a crash.
#   consumer_test.sh BUILD_DIR SOURCE_DIR SHARED_DIR      (exit 77: skipped, ../shared missing)
set -euo pipefail
build="$(realpath "$1")" source="$(realpath "$2")" shared="$3"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
fail() { echo "consumer_test: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/tuneserve lib/libtuneserve.so include/tuneserve/tuneserve.h include/tuneserve/tuneserve_handler.h \
         lib/cmake/tuneserve/tuneserveConfig.cmake lib/cmake/tuneserve/tuneserveConfigVersion.cmake \
         lib/pkgconfig/tuneserve.pc; do
  [ -e "$prefix/$f" ] || fail "$f is not installed"
done
if grep -rlF -e "$source" -e "$build" "$prefix/lib/cmake" "$prefix/lib/pkgconfig" "$prefix/include"; then
  fail "installed files name the source or build tree (above)"
fi
# Only the public API leaves the shared library.
if nm -DC --defined-only "$prefix/lib/libtuneserve.so" | grep -v " tuneserve::\(version\|Classifier\|fine_tune\)" |
   grep " T "; then
  fail "libtuneserve.so exports more than include/tuneserve/tuneserve.h declares (above)"
fi

cp -r "$source/examples/api" "$source/examples/handler" "$work/"
for example in api handler; do
  cmake -S "$work/$example" -B "$work/$example-build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_PREFIX_PATH="$prefix" >"$work/$example.log" 2>&1 || { cat "$work/$example.log"; fail "configuring $example"; }
  cmake --build "$work/$example-build" >>"$work/$example.log" 2>&1 || { cat "$work/$example.log"; fail "building $example"; }
done
[ -f "$work/handler-build/libreview_handler.so" ] || fail "the handler example built no plugin"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
# shellcheck disable=SC2046
c++ -std=c++17 -O1 "$work/api/classify.cpp" -o "$work/classify-pc" $(pkg-config --cflags --libs tuneserve)
echo "built examples/api and examples/handler against $prefix (CMake) and classify with pkg-config"

if "$work/api-build/classify" "$work/no-such-model" "a text" 2>"$work/err"; then fail "a missing model directory succeeded"; fi
grep -q "no-such-model" "$work/err" || fail "the error does not name the directory: $(cat "$work/err")"
if "$work/api-build/fine_tune" model=x learning_rat=1 2>"$work/err"; then fail "a misspelt hyperparameter succeeded"; fi
grep -q "learning_rat" "$work/err" || fail "the error does not name the hyperparameter: $(cat "$work/err")"

model="$shared/models/distilbert-tiny-init"
tokenizer="$shared/tokenizers/bert-base-cased"
if [ ! -d "$model" ] || [ ! -d "$tokenizer" ]; then
  echo "consumer_test: $model or $tokenizer missing (../shared beside the checkout): classification skipped"
  exit 77
fi
texts=("This is a very good product!" "It broke after a day.")
"$work/api-build/classify" "$model" --tokenizer "$tokenizer" "${texts[@]}" >"$work/api.txt"
LD_LIBRARY_PATH="$prefix/lib" "$work/classify-pc" "$model" --tokenizer "$tokenizer" "${texts[@]}" >"$work/pc.txt"
cmp -s "$work/api.txt" "$work/pc.txt" || fail "the pkg-config build classifies differently"
"$prefix/bin/tuneserve" predict --model "$model" --tokenizer "$tokenizer" --top-k all "${texts[@]}" >"$work/predict.json"
python3 - "$work/api.txt" "$work/predict.json" <<'PY'
import json, sys
api = [line.split() for line in open(sys.argv[1])]
predict = json.load(open(sys.argv[2]))
assert len(api) == len(predict), (api, predict)
for got, want in zip(api, predict):
    labels, scores = got[0::2], [float(s) for s in got[1::2]]
    assert labels == [w["label"] for w in want], (got, want)
    assert all(abs(a - w["score"]) <= 1e-6 for a, w in zip(scores, want)), (got, want)
print("classify (installed API) = tuneserve predict:", " | ".join(" ".join(line) for line in api))
PY

"$work/api-build/fine_tune" model="$model" tokenizer="$tokenizer" train="$shared/data/amazon_polarity/test.jsonl" \
  text=content label=label max_steps=3 train_batch_size=8 max_length=64 save_strategy=no \
  output_dir="$work/tuned" >"$work/tune.txt" 2>"$work/tune.err" || { cat "$work/tune.err"; fail "fine_tune failed"; }
grep -q "^steps 3 " "$work/tune.txt" || fail "fine_tune did not take 3 steps: $(cat "$work/tune.txt")"
grep -q "^step 3/3 " "$work/tune.err" || fail "fine_tune reported no progress"
"$work/api-build/classify" "$work/tuned" "${texts[0]}" >"$work/tuned.txt"
grep -q "^LABEL_[01] " "$work/tuned.txt" || fail "the fine-tuned model does not classify: $(cat "$work/tuned.txt")"
echo "fine_tune: $(head -1 "$work/tune.txt"); the result classifies: $(cat "$work/tuned.txt")"

# A missing library stops the program with the loader's one line naming it.
mkdir "$work/moved" && mv "$prefix"/lib/libtuneserve.so.* "$work/moved/"
if "$work/api-build/classify" "$model" "a text" 2>"$work/err"; then fail "classify ran without libtuneserve.so"; fi
[ "$(wc -l <"$work/err")" -eq 1 ] && grep -q "libtuneserve.so.0: cannot open shared object file" "$work/err" ||
  fail "without its library classify said: $(cat "$work/err")"
echo "without libtuneserve.so: $(cat "$work/err")"
