#!/usr/bin/env bash
# Builds what a lent GPU machine needs to check the CUDA backend, and gathers it into one folder small
# enough to carry there (the device tool carries at most 64 MiB): the CUDA test binary, the GPU
# training benchmark (bench/gpu_train_bench.cpp) and the shared libraries that machine's image lacks
# (oneDNN, libgomp, the OpenCL loader oneDNN links; both binaries need the same ones).
# cuBLASLt and the CUDA runtime are not carried (cuBLASLt alone is ~500 MB): scripts/gpu_check.sh
# finds the image's own CUDA 13 libraries.
#
#   scripts/gpu_bundle.sh            # → build-gpu/bundle/{bin,lib}
#   then, with the device tool: scripts/gpu_check.sh, carrying build-gpu/bundle
#
# Built for sm_90 only (faster) and without -march=native (the GPU host's CPU may lack AVX-512).
set -euo pipefail
cd "$(dirname "$0")/.."

build=build-gpu
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMERIDIAN_NATIVE_ARCH=OFF \
      -DCMAKE_CUDA_ARCHITECTURES=90 -DMERIDIAN_BUILD_BENCH=ON > /dev/null
cmake --build "$build" --target cuda_tests gpu_train_bench

bundle="$build/bundle"
rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/lib"
cp "$build/bin/cuda_tests" "$build/bin/gpu_train_bench" "$bundle/bin/"
# Every non-CUDA, non-glibc library the binaries need, as the loader resolves it here.
ldd "$build/bin/cuda_tests" "$build/bin/gpu_train_bench" | awk '/=>/ {print $1, $3}' | sort -u | while read -r name path; do
  case "$name" in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|libgcc_s.so*|libcudart.so*|libcublas*|libcuda.so*) ;;
    *) cp -L "$path" "$bundle/lib/$name" ;;
  esac
done
du -sh "$bundle"
echo "bundle ready: carry $bundle and run scripts/gpu_check.sh on the device machine"
