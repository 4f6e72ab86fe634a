#!/usr/bin/env bash
# Installs tuneserve's build dependencies from Debian, then configures and builds into build/.
#   scripts/setup.sh                 Release build (the default users get)
#   BUILD_DIR=b CMAKE_ARGS="-DTUNESERVE_WERROR=ON" scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config git
  libdnnl-dev libutf8proc-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev libboost1.81-dev libssl-dev
  python3-numpy
  python3-torch libopenblas0-openmp
  curl awscli nodejs clang-14 libclang-rt-14-dev  # serve: end-to-end clients, fuzzer
)
# npm (serve's JS client test, the report page's Chart.js) ships inside NodeSource's nodejs;
# Debian's nodejs needs the separate npm package, which conflicts with NodeSource's.
command -v npm >/dev/null 2>&1 || packages+=(npm)
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

build_dir="${BUILD_DIR:-build}"
# shellcheck disable=SC2086
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" ${CMAKE_ARGS:-}
cmake --build "$build_dir" -j"$(nproc)"
