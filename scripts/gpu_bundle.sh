#!/usr/bin/env bash
# Builds what a lent GPU machine needs to check the CUDA backend, and packs it into one compressed
# file small enough to carry there (the device tool carries at most 64 MiB): the CUDA test binary,
# the GPU benchmarks (bench/gpu_train_bench.cpp, bench/gpu_kernel_bench.cpp), the trainer
# (examples/train_gpt2) and the
# shared libraries that machine's image lacks: oneDNN, libgomp, the OpenCL loader oneDNN links, and
# Open MPI (its libraries, components and help texts) so that train_gpt2 runs there as a one-rank
# MPI singleton without mpirun.
# cuBLASLt, NCCL and the CUDA runtime are not carried (cuBLASLt alone is ~500 MB):
# scripts/gpu_check.sh finds the image's own CUDA 13 libraries.
#
#   scripts/gpu_bundle.sh            # → build-gpu/carry/bundle.tar.xz (and build-gpu/bundle, unpacked)
#   then, with the device tool: scripts/gpu_check.sh, carrying build-gpu/carry
#
# Built for sm_90 only (faster) and without -march=native (the GPU host's CPU may lack AVX-512).
set -euo pipefail
cd "$(dirname "$0")/.."

build=build-gpu
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMERIDIAN_NATIVE_ARCH=OFF \
      -DCMAKE_CUDA_ARCHITECTURES=90 -DMERIDIAN_BUILD_BENCH=ON > /dev/null
binaries=(cuda_tests gpu_train_bench gpu_kernel_bench train_gpt2)
cmake --build "$build" --target "${binaries[@]}"

bundle="$build/bundle"
rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/lib"
for binary in "${binaries[@]}"; do cp "$build/bin/$binary" "$bundle/bin/"; done

# Open MPI's components (loaded with dlopen, so ldd of the binaries does not list them) and help texts.
ompi_path() { ompi_info --path "$1" --parsable | cut -d: -f3; }
cp -r "$(ompi_path pkglibdir)" "$bundle/ompi-components"
cp -r "$(ompi_path pkgdatadir)" "$bundle/ompi-share"

# Every library the binaries and the components need, as the loader resolves it here, except glibc's,
# CUDA's (the image has its own) and the network fabrics' (InfiniBand, libfabric, UCX, PSM: a
# one-rank singleton needs none; the components that want them fail to load, which is harmless).
ldd "${binaries[@]/#/$build/bin/}" "$bundle"/ompi-components/*.so | awk '/=>/ && $3 ~ /^\// {print $1, $3}' |
  sort -u | while read -r name path; do
  case "$name" in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|libgcc_s.so*|libcudart.so*|libcublas*|libcuda.so*|libnccl*) ;;
    libfabric*|libefa*|libibverbs*|librdmacm*|libpsm*|libinfinipath*|libuc[mpst].so*|libnl-*|libmunge*|libnuma*) ;;
    *) cp -L "$path" "$bundle/lib/$name" ;;
  esac
done

mkdir -p "$build/carry"
tar -C "$build" -cJf "$build/carry/bundle.tar.xz" bundle
du -sh "$bundle" "$build/carry/bundle.tar.xz"
echo "bundle ready: carry $build/carry and run scripts/gpu_check.sh on the device machine"
