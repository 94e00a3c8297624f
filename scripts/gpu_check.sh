#!/usr/bin/env bash
# Runs on a lent GPU machine (the device tool runs commands in the repository root): the CUDA tests
# from the bundle scripts/gpu_bundle.sh made here, against the image's CUDA 13 runtime and cuBLASLt.
# Full output goes to $OUT/cuda_tests.txt (and an XML report); the last lines printed are the summary.
set -uo pipefail
cd "$(dirname "$0")/.."
bundle=build-gpu/bundle
out="${OUT:-/tmp/meridian-gpu-check}"
mkdir -p "$out"
[ -x "$bundle/bin/cuda_tests" ] || { echo "no $bundle/bin/cuda_tests: run scripts/gpu_bundle.sh first and carry $bundle"; exit 2; }

# The image ships CUDA's libraries as Python packages (nvidia-cublas, nvidia-cuda-runtime) and/or
# under /usr/local/cuda*; take the first folder that holds each library.
find_lib_dir() {
  local name=$1 dir site
  local dirs=(/usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda-13*/lib64)
  for site in $(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null); do
    dirs+=("$site"/nvidia/*/lib "$site"/nvidia/cu13/lib)
  done
  for dir in "${dirs[@]}"; do
    [ -e "$dir/$name" ] && { echo "$dir"; return 0; }
  done
  return 1
}
cuda_dirs=""
for lib in libcudart.so.13 libcublasLt.so.13; do
  dir=$(find_lib_dir "$lib") || { echo "cannot find $lib on this machine"; exit 2; }
  cuda_dirs="$cuda_dirs:$dir"
done
export LD_LIBRARY_PATH="$PWD/$bundle/lib${cuda_dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
ldd "$bundle/bin/cuda_tests" "$bundle/bin/gpu_train_bench" | grep -E "not found" && { echo "missing libraries (above)"; exit 2; }
"$bundle/bin/cuda_tests" --gtest_output="xml:$out/cuda_tests.xml" > "$out/cuda_tests.txt" 2>&1
status=$?
grep -E "^\[  (FAILED|SKIPPED) |^\[==========\]|^\[  PASSED  \]" "$out/cuda_tests.txt" | tail -40
echo "cuda_tests exit $status (full output: cuda_tests.txt)"

# The speed figures (GPT-2 124M, T = 1024, bf16): skipped with MERIDIAN_GPU_CHECK_SKIP_BENCH=1.
if [ "${MERIDIAN_GPU_CHECK_SKIP_BENCH:-0}" != 1 ]; then
  timeout 300 "$bundle/bin/gpu_train_bench" ${MERIDIAN_GPU_BENCH_ARGS:-} > "$out/gpu_train_bench.txt" 2>&1
  echo "gpu_train_bench exit $? (output: gpu_train_bench.txt)"
  cat "$out/gpu_train_bench.txt"
  # The same model with the batched-product attention (T×T probabilities saved), to compare.
  timeout 150 "$bundle/bin/gpu_train_bench" --attention batched_matmul --batches 16 --profile-steps 1 \
    > "$out/gpu_train_bench_batched_matmul.txt" 2>&1
  echo "gpu_train_bench --attention batched_matmul exit $? (output: gpu_train_bench_batched_matmul.txt)"
  cat "$out/gpu_train_bench_batched_matmul.txt"
fi
exit $status
