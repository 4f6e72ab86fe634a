#!/usr/bin/env bash
# The .deb as a user installs it (.ci/run; needs root or sudo): CPack builds it from BUILD_DIR with
# its Depends derived from the binaries by dpkg-shlibdeps, apt-get installs it, /usr/bin/tuneserve
# runs `predict` from a directory outside the checkout (same scores as the build tree's binary),
# and apt-get removes it again.
#   scripts/check_deb.sh      (after scripts/setup.sh; BUILD_DIR, SHARED optional)
set -euo pipefail
cd "$(dirname "$0")/.."
build="$(realpath "${BUILD_DIR:-build}")"
shared="$(realpath "${SHARED:-../shared}")"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

rm -f "$build"/tuneserve_*.deb
(cd "$build" && cpack -G DEB >/dev/null)
deb="$(echo "$build"/tuneserve_*.deb)"
[ -f "$deb" ] || { echo "check_deb: cpack made no tuneserve_*.deb in $build" >&2; exit 1; }
echo "== $(basename "$deb"): Depends: $(dpkg-deb -f "$deb" Depends)"
dpkg-deb -f "$deb" Depends | grep -q "libdnnl" ||
  { echo "check_deb: Depends lacks oneDNN: were they derived from the binaries?" >&2; exit 1; }

DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "$deb" >/dev/null
trap 'DEBIAN_FRONTEND=noninteractive $sudo apt-get remove -y -q tuneserve >/dev/null' EXIT
outside="$(mktemp -d)"
cd "$outside"
/usr/bin/tuneserve --version
args=(predict --model "$shared/models/distilbert-tiny-init" --tokenizer "$shared/tokenizers/bert-base-cased"
      "This is a very good product!")
/usr/bin/tuneserve "${args[@]}" >installed.json
"$build/tuneserve" "${args[@]}" >built.json
cmp -s installed.json built.json ||
  { echo "check_deb: /usr/bin/tuneserve predicts $(cat installed.json), the build tree $(cat built.json)" >&2; exit 1; }
echo "== /usr/bin/tuneserve predict from $outside: $(cat installed.json)"
cd / && rm -rf "$outside"
