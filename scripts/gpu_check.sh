#!/usr/bin/env bash
# Runs on a lent GPU machine (the device tool runs commands in the repository root), from the bundle
# scripts/gpu_bundle.sh made here, against the image's CUDA 13 runtime, cuBLASLt and NCCL.
#
#   scripts/gpu_check.sh [stage...]     stages: tests trainer bench compare (default: the first three, in
#                                       that order)
#
#   tests    the CUDA kernel and engine tests (cuda_tests), a process per suite → $OUT/cuda_tests.txt
#   trainer  train_gpt2 --device cuda against --device cpu in f32 and bf16 (tests/examples/trainer_cuda.py,
#            20 steps each), then a bf16 GPT-2 124M run of 20 steps on the built-in corpus
#                                                              → $OUT/trainer.txt
#   bench    bench/gpu_kernel_bench (each kernel of the bf16 GPT-2 124M step alone: ms, TFLOP/s or GB/s)
#            → $OUT/gpu_kernel_bench.txt; bench/gpu_train_bench (GPT-2 124M, T = 1024, bf16; tokens/s,
#            MFU, per-op table) with the flash kernel and with the batched-product attention
#            → $OUT/gpu_train_bench*.txt
#   compare  the whole bf16 step at batch 16 with the options the first GPU run is to choose between, each
#            against the defaults in the same run: 32 query rows per warp in the flash kernels, and dbias
#            as its own reduction instead of cuBLASLt's BGRADB epilogue → $OUT/compare.txt
#
# The last lines printed are each stage's summary. Exit status: non-zero if any stage failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
out="${OUT:-/tmp/meridian-gpu-check}"
mkdir -p "$out"
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(tests trainer bench)

bundle=build-gpu/bundle
if [ -f build-gpu/carry/bundle.tar.xz ]; then
  rm -rf "$bundle" && tar -C build-gpu -xJf build-gpu/carry/bundle.tar.xz
fi
if [ ! -x "$bundle/bin/cuda_tests" ]; then
  echo "no $bundle: run scripts/gpu_bundle.sh first and carry build-gpu/carry"
  exit 2
fi

# The image ships CUDA's libraries as Python packages (nvidia-cublas, nvidia-cuda-runtime, nvidia-nccl-cu13)
# and/or under /usr/local/cuda*; take the first folder that holds each library.
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
for lib in libcudart.so.13 libcublasLt.so.13 libnccl.so.2; do
  dir=$(find_lib_dir "$lib") || { echo "cannot find $lib on this machine"; exit 2; }
  cuda_dirs="$cuda_dirs:$dir"
done
export LD_LIBRARY_PATH="$PWD/$bundle/lib${cuda_dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Open MPI from the bundle, as a one-rank singleton: its components and help texts where the bundle put
# them, no orted to start, and no complaint about the network components the bundle leaves out.
export OMPI_MCA_mca_base_component_path="$PWD/$bundle/ompi-components"
export OPAL_PKGDATADIR="$PWD/$bundle/ompi-share"
export OMPI_MCA_ess_singleton_isolated=1
export OMPI_MCA_mca_base_component_show_load_errors=0

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
ldd "$bundle"/bin/* | grep -E "not found" && { echo "missing libraries (above)"; exit 2; }

failed=0
# run_step LIMIT FILE COMMAND...: runs COMMAND under a time limit, appending its output and then a line
# "<command> exit <status>" to $out/FILE; prints that line, and marks the check failed when the status is
# not 0. Every stage runs its commands through it, so a failure is read from the exit status, not the text.
run_step() {
  local limit=$1 file=$2
  shift 2
  timeout "$limit" "$@" >> "$out/$file" 2>&1
  local status=$?
  echo "$(basename "$1")${2:+ ${*:2}} exit $status" | tee -a "$out/$file"
  [ $status -eq 0 ] || failed=1
}
# fresh FILE...: empties $out/FILE, so that a second run of a stage does not append to the first's output.
fresh() { local file; for file in "$@"; do : > "$out/$file"; done; }
for stage in "${stages[@]}"; do
  case "$stage" in
    tests)
      # One process per test suite, each under a time limit: a crash or a hung kernel costs its own
      # suite, not the report of every suite after it.
      fresh cuda_tests.txt
      # Suite lines start with the suite's name and a '.' (a typed suite's go on with "# TypeParam = …");
      # gtest_main's "Running main() from …" is not one.
      suites=$("$bundle/bin/cuda_tests" --gtest_list_tests | grep -oE '^[A-Za-z0-9_/]+\.' | sed 's/\.$//')
      for suite in $suites; do
        run_step 300 cuda_tests.txt "$bundle/bin/cuda_tests" --gtest_filter="$suite.*"
      done
      count() { grep -cE "^\[ +$1 +\] [A-Za-z0-9_]+\.[A-Za-z0-9_/]+ \(" "$out/cuda_tests.txt"; }
      grep -E "^\[  FAILED  \] [A-Za-z0-9_]+\.[A-Za-z0-9_/]+ \(" "$out/cuda_tests.txt" | tail -40
      echo "cuda_tests: $(count OK) passed, $(count FAILED) failed, $(count SKIPPED) skipped" \
           "(full output: cuda_tests.txt)"
      ;;
    trainer)
      fresh trainer.txt
      for case in matches_cpu bf16_matches_cpu; do
        run_step 240 trainer.txt env OMP_NUM_THREADS=4 python3 tests/examples/trainer_cuda.py \
          --trainer "$bundle/bin/train_gpt2" --mpiexec none --work-dir "/tmp/meridian-trainer-$case" --case "$case"
      done
      run_step 240 trainer.txt "$bundle/bin/train_gpt2" --device cuda --dtype bf16 --model gpt2-124m --batch 16 \
        --seq-len 1024 --steps 20
      grep -E "FAIL|step +(1|20)/|tokens/s" "$out/trainer.txt" | tail -20
      ;;
    bench)
      fresh gpu_kernel_bench.txt gpu_train_bench.txt gpu_train_bench_batched_matmul.txt
      run_step 120 gpu_kernel_bench.txt "$bundle/bin/gpu_kernel_bench"
      # shellcheck disable=SC2086  # the extra arguments are words
      run_step 300 gpu_train_bench.txt "$bundle/bin/gpu_train_bench" ${MERIDIAN_GPU_BENCH_ARGS:-}
      # The same model with the batched-product attention (T×T probabilities saved), to compare.
      run_step 150 gpu_train_bench_batched_matmul.txt "$bundle/bin/gpu_train_bench" --attention batched_matmul \
        --batches 16 --profile-steps 1
      cat "$out/gpu_kernel_bench.txt" "$out/gpu_train_bench.txt" "$out/gpu_train_bench_batched_matmul.txt"
      ;;
    compare)
      fresh compare.txt
      for options in "" "--flash-query-rows 32" "--bias-gradient apart"; do
        # shellcheck disable=SC2086  # the options are words
        run_step 140 compare.txt "$bundle/bin/gpu_train_bench" --batches 16 --profile-steps 1 $options
      done
      grep -E "^ +16 |^gpu_train_bench:|attention|linear" "$out/compare.txt"
      ;;
    *) echo "unknown stage $stage (tests, trainer, bench, compare)"; exit 2 ;;
  esac
done
exit $failed
