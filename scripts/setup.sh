#!/usr/bin/env bash
# Installs tuneserve's build dependencies from Debian, then configures and builds into build/.
#   scripts/setup.sh                 Release build (the default users get)
#   BUILD_DIR=b CMAKE_ARGS="-DTUNESERVE_WERROR=ON" scripts/setup.sh
#   scripts/setup.sh --print-packages  the Debian packages it installs, one per line (.ci/run's fresh-deps)
set -euo pipefail
cd "$(dirname "$0")/.."

# The package list lives in one file, read here and by .ci/run's fresh-deps check.
mapfile -t packages < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' scripts/packages.txt)
# npm (serve's JS client test, the report page's Chart.js) ships inside NodeSource's nodejs;
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

# npm packages, pinned, into third_party/npm (git-ignored): Chart.js, which `tuneserve report` embeds so
# its pages work offline; @huggingface/hub, the independent client the Hub cache tests check against;
# transformers.js with the tokenizers package it resolves to, the independent implementation the
# tokenizer cross-check compares with; onnxruntime-node, bench/inference.sh's ONNX Runtime peer (its
# tarball holds the CPU library and binding). --ignore-scripts: none needs an install step (none may
# fetch from the internet; onnxruntime-node's would download CUDA parts, transformers.js's image
# dependencies binaries it never loads).
npm_missing=()
for spec in chart.js@4.5.1 @huggingface/hub@2.17.5 @huggingface/transformers@4.3.1 @huggingface/tokenizers@0.2.0 \
  onnxruntime-node@1.30.0; do
  [ -f "third_party/npm/node_modules/${spec%@*}/package.json" ] || npm_missing+=("$spec")
done
if ((${#npm_missing[@]})); then
  npm install --prefix third_party/npm --no-audit --no-fund --silent --ignore-scripts "${npm_missing[@]}" ||
    echo "setup: could not install ${npm_missing[*]} from npm; tuneserve report and the cross-checks say so when run"
fi

# The S3 tests start moto's server (python3 -m moto.server) and drive it with the AWS CLI; the fresh
# image has both in its python3 (pip: moto 5.2.1, awscli), and Debian's awscli is in the list above.
if ! python3 -c "import moto.server, flask_cors" >/dev/null 2>&1; then
  python3 -m pip install --quiet "moto[server]==5.2.1" ||
    echo "setup: moto's server is missing and could not be installed; the S3 tests will skip and say so"
fi

build_dir="${BUILD_DIR:-build}"
# shellcheck disable=SC2086
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" ${CMAKE_ARGS:-}
cmake --build "$build_dir" -j"$(nproc)"
