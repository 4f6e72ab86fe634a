#!/usr/bin/env bash
# Configures and builds the CUDA backend into build-cuda/: the kernels, their tests against the CPU
# twins and the kernel benchmark (compile and link only; no GPU needed), not the rest of libtuneserve
# (TARGETS="tuneserve_cli ..." for more; CI builds TARGETS=all with the benchmarks, as users configure it).
# bench/gpu_check.sh reuses it.
#   scripts/build_cuda.sh
#   BUILD_DIR=b TARGETS="tuneserve_cuda test_cuda" JOBS=4 CMAKE_ARGS="-DTUNESERVE_WERROR=ON" scripts/build_cuda.sh
#   BUNDLE=build-cuda-bundle scripts/build_cuda.sh     also pack prebuilt binaries for a GPU machine (below;
#                                                      with TARGETS="... tuneserve_cli" the tuneserve binary too)
set -euo pipefail
cd "$(dirname "$0")/.."

nvcc="${CUDACXX:-/usr/local/cuda/bin/nvcc}"
if [ ! -x "$nvcc" ]; then
  echo "build_cuda: no CUDA compiler at $nvcc (set CUDACXX)" >&2
  exit 1
fi
build_dir="${BUILD_DIR:-build-cuda}"
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
# shellcheck disable=SC2086
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" -DTUNESERVE_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="$nvcc" -DTUNESERVE_BENCH=OFF ${CMAKE_ARGS:-}
# shellcheck disable=SC2086
cmake --build "$build_dir" -j"${JOBS:-$(nproc)}" --target ${TARGETS:-test_cuda bench_cuda_kernels}

# BUNDLE=dir: the test and benchmark binaries plus the shared libraries they need that a CUDA image
# may lack (all but glibc, libstdc++/libgcc and CUDA's own), as dir/bundle.tar.xz, for a GPU machine
# without the Debian packages: bench/gpu_check.sh unpacks and runs it when it cannot build.
if [ -n "${BUNDLE:-}" ]; then
  stage="$(mktemp -d)"
  trap 'rm -rf "$stage"' EXIT
  mkdir -p "$stage/bin" "$stage/lib" "$BUNDLE"
  for target in test_cuda bench_cuda_kernels tuneserve; do  # tuneserve: when TARGETS built tuneserve_cli
    found="$(find "$build_dir" -name "$target" -type f -perm -u+x | head -n 1)"
    if [ -n "$found" ]; then cp "$found" "$stage/bin/"; elif [ "$target" != tuneserve ]; then exit 1; fi
  done
  ldd "$stage"/bin/* | awk '/=> \// {print $3}' | sort -u |
    grep -v -E '/(libc|libm|libdl|librt|libpthread|ld-linux-x86-64|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt)\.so' |
    xargs -r cp -L -t "$stage/lib"
  tar -C "$stage" -cJf "$BUNDLE/bundle.tar.xz" bin lib
  echo "build_cuda: $BUNDLE/bundle.tar.xz ($(du -h "$BUNDLE/bundle.tar.xz" | cut -f1)): $(ls "$stage/bin" "$stage/lib" | tr '\n' ' ')"
fi
