#!/usr/bin/env bash
# GPT-2 124M training-step benchmark on the CPU (batch 4, sequence 64, AdamW, float32):
#   1. Meridian, one process on all cores, with the per-op breakdown;
#   2. PyTorch's step on the same shape in the same run (when python3 with torch is found), for a ratio;
#   3. data parallel dp=2, one thread per rank, with gradient communication on and off (the overlap);
#   4. ZeRO 0/1/2 at dp=2: peak memory per rank.
# Usage: bench/gpt2_step_bench.sh [steps]   (run from anywhere; needs build/ from scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-6}
trainer=build/bin/train_gpt2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
common=(--model gpt2-124m --batch 4 --seq-len 64 --steps "$steps" --lr 3e-4 --grad-clip 1.0)
mean_ms() { sed -n 's/^mean step[^:]*: \([0-9.]*\) ms.*/\1/p' | tail -1; }

echo "== machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); $(date -u +%F)"
echo "== 1. Meridian, one process, $(nproc) threads"
single_log=$(mktemp)
"$trainer" "${common[@]}" --threads "$(nproc)" --profile | tee "$single_log" | grep -v "leaf:"
meridian_ms=$(mean_ms < "$single_log")

torch_ms=""
for python in python3 /usr/bin/python3; do
  if "$python" -c "import torch" 2>/dev/null; then
    echo "== 2. PyTorch ($("$python" -c 'import torch; print(torch.__version__)')), same shape, $(nproc) threads"
    torch_line=$("$python" bench/torch_gpt2_step.py --threads "$(nproc)" --steps "$steps")
    echo "$torch_line"
    torch_ms=$(echo "$torch_line" | sed -n 's/.*: \([0-9.]*\) ms\/step.*/\1/p')
    break
  fi
done

echo "== 3. dp=2, one thread per rank: gradient all-reduce overlapped with backward vs switched off"
on_ms=$(mpirun --oversubscribe -np 2 "$trainer" "${common[@]}" --threads 1 --dp-comm on | mean_ms)
off_ms=$(mpirun --oversubscribe -np 2 "$trainer" "${common[@]}" --threads 1 --dp-comm off | mean_ms)

echo "== 4. ZeRO stages at dp=2: memory per rank"
for zero in 0 1 2; do
  echo "-- ZeRO $zero"
  mpirun --oversubscribe -np 2 "$trainer" "${common[@]}" --steps 2 --threads 1 --zero "$zero" | sed -n '/^memory per rank/,$p'
done

echo
echo "== summary"
echo "Meridian step:             ${meridian_ms} ms ($(awk -v ms="$meridian_ms" 'BEGIN{printf "%.0f", 256/(ms/1000)}') tokens/s)"
[ -n "$torch_ms" ] && echo "PyTorch step:              ${torch_ms} ms; PyTorch / Meridian = $(awk -v a="$torch_ms" -v b="$meridian_ms" 'BEGIN{printf "%.2f", a/b}')"
echo "dp=2 step, comm on / off:  ${on_ms} / ${off_ms} ms; ratio $(awk -v a="$on_ms" -v b="$off_ms" 'BEGIN{printf "%.3f", a/b}') (target <= 1.15)"
rm -f "$single_log"
