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
