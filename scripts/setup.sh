#!/usr/bin/env bash
# Installs tuneserve's build dependencies from Debian, then configures and builds into build/.
#   scripts/setup.sh                 Release build (the default users get)
#   BUILD_DIR=b CMAKE_ARGS="-DTUNESERVE_WERROR=ON" scripts/setup.sh
#   scripts/setup.sh --print-packages  the Debian packages it installs, one per line (.ci/run's fresh-deps)
set -euo pipefail
cd "$(dirname "$0")/.."

# The package list lives in one file, read here and by .ci/run's fresh-deps check.
mapfile -t packages < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' scripts/packages.txt)
# npm (serve's JS client test, the report page's Chart.js, the tokenizer cross-check) ships inside NodeSource's nodejs;
# Debian's nodejs needs the separate npm package, which conflicts with NodeSource's.
command -v npm >/dev/null 2>&1 || packages+=(npm)
if [ "${1:-}" = --print-packages ]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# `tuneserve report` embeds Chart.js from npm (pinned) so its pages work offline.
chartjs=third_party/npm/node_modules/chart.js/dist/chart.umd.js
if [ ! -f "$chartjs" ]; then
  npm install --prefix third_party/npm --no-audit --no-fund --silent chart.js@4.5.1 ||
    echo "setup: could not install chart.js from npm; tuneserve report will say so when run"
fi

# The tokenizer cross-check (tests/tokenizer/js_crosscheck_test.cpp) compares with transformers.js,
# pinned with the tokenizers package it resolves to; --ignore-scripts: its ONNX and image
# dependencies' install scripts would download binaries the check never loads.
transformers_js=third_party/npm/node_modules/@huggingface/transformers/package.json
if ! grep -q '"version": "4.3.1"' "$transformers_js" 2>/dev/null; then
  npm install --prefix third_party/npm --ignore-scripts --no-audit --no-fund --silent \
    @huggingface/transformers@4.3.1 @huggingface/tokenizers@0.2.0 ||
    echo "setup: could not install @huggingface/transformers from npm; the tokenizer cross-check will skip"
fi

build_dir="${BUILD_DIR:-build}"
# shellcheck disable=SC2086
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" ${CMAKE_ARGS:-}
cmake --build "$build_dir" -j"$(nproc)"
