#!/usr/bin/env bash
# Tensor parallelism on GPT-2 124M (batch 4, sequence 64, AdamW, float32, one thread per rank):
# tp = 1, 2, 4 (mpirun -np tp) and tp = 2 with --sequence-parallel, plus one process on every core
# as the same-core-count reference. Per run, from the trainer's own output:
#   - parameters per rank            ("parameters per rank: X of Y", rank 0)
#   - peak memory per rank           (the end-of-run table: peak allocated | parameters | gradients |
#                                     optimizer state; "other" = peak − the three = activations,
#                                     logits and temporaries)
#   - ms/step and tokens/s           ("mean step (excluding the first)")
#   - time in TP collectives         (--profile on rank 0: the tp.all_reduce / tp.all_gather /
#                                     tp.reduce_scatter scopes, summed, as a share of the step)
# Usage: bench/tp_bench.sh [steps] [out_dir]   (run from anywhere; needs build/ from scripts/build.sh)
# Logs of every run go to out_dir (default build/bench-out/tp).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-5}
out=${2:-build/bench-out/tp}
mkdir -p "$out"
trainer=build/bin/train_gpt2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
common=(--model gpt2-124m --batch 4 --seq-len 64 --steps "$steps" --lr 3e-4 --grad-clip 1.0 --profile)

echo "== machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); $(date -u +%F); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== gpt2-124m, batch 4 x seq 64 (256 tokens per step), $steps steps (the first is left out of the means)"

# name | ranks | threads per rank | extra mpirun flags | extra trainer flags
# (mpirun binds each rank to one core when there are at most 2 ranks: the reference on every core
# needs --bind-to none.)
runs=(
  "tp=1|1|1||"
  "tp=2|2|1||--tp 2"
  "tp=2 +SP|2|1||--tp 2 --sequence-parallel"
  "tp=4|4|1||--tp 4"
  "tp=1, $(nproc) threads|1|$(nproc)|--bind-to none|"
)

summary=$(mktemp)
for run in "${runs[@]}"; do
  IFS='|' read -r name ranks threads launch extra <<<"$run"
  log="$out/$(echo "$name" | tr -c 'a-zA-Z0-9=\n' '_').log"
  # shellcheck disable=SC2086  # $launch and $extra are lists of flags
  cmd=(mpirun --oversubscribe $launch -np "$ranks" "$trainer" "${common[@]}" --threads "$threads" $extra)
  echo
  echo "== $name: ${cmd[*]}"
  "${cmd[@]}" >"$log" 2>&1 || { cat "$log"; exit 1; }
  grep -E '^(tensor parallel|parameters per rank|mean step)' "$log"
  sed -n '/^memory per rank/,$p' "$log"
  echo "  TP collectives on rank 0 (ms per step, calls):"
  awk '$1 ~ /^tp\./ {printf "    %-40s %9s ms  %s %s\n", $1, $2, $4, $5}' "$log"

  params=$(sed -n 's/^parameters per rank: \([0-9]*\) of \([0-9]*\).*/\1/p' "$log")
  total=$(sed -n 's/^parameters per rank: \([0-9]*\) of \([0-9]*\).*/\2/p' "$log")
  ms=$(sed -n 's/^mean step[^:]*: \([0-9.]*\) ms, \([0-9.]*\) tokens.*/\1/p' "$log")
  tps=$(sed -n 's/^mean step[^:]*: \([0-9.]*\) ms, \([0-9.]*\) tokens.*/\2/p' "$log")
  # Memory table rows: "  rank R: peak | parameters | gradients | optimizer state" (MiB).
  mem=$(sed -n '/^memory per rank/,$p' "$log" | awk -F'|' '/^  rank/ {
          split($1, a, ":"); peak = a[2] + 0; persistent = $2 + $3 + $4
          if (peak > max_peak) { max_peak = peak; max_persistent = persistent }
        } END { printf "%.0f %.0f %.0f", max_peak, max_persistent, max_peak - max_persistent }')
  comm_ms=$(awk '$1 ~ /^tp\./ {s += $2} END {printf "%.1f", s + 0}' "$log")
  echo "$name|$ranks|$threads|$params|$total|$mem|$ms|$tps|$comm_ms" >>"$summary"
done

echo
echo "== summary (peak memory: the largest over the job's ranks, MiB; \"other\" = peak − parameters − gradients − optimizer state)"
base_tps=$(head -1 "$summary" | awk -F'|' '{print $8}')
printf "| %-16s | %5s | %7s | %18s | %9s | %18s | %9s | %7s | %8s | %8s | %10s | %9s |\n" \
  run ranks threads "parameters / rank" "share" "peak MiB / rank" "p+g+opt" other "ms/step" tokens/s "vs tp=1 1T" "TP comm"
printf "| %-16s | %5s | %7s | %18s | %9s | %18s | %9s | %7s | %8s | %8s | %10s | %9s |\n" \
  --- ---: ---: ---: ---: ---: ---: ---: ---: ---: ---: ---:
while IFS='|' read -r name ranks threads params total mem ms tps comm_ms; do
  read -r peak persistent other <<<"$mem"
  awk -v n="$name" -v r="$ranks" -v t="$threads" -v p="$params" -v tot="$total" -v peak="$peak" \
      -v pers="$persistent" -v other="$other" -v ms="$ms" -v tps="$tps" -v base="$base_tps" -v c="$comm_ms" \
      'BEGIN { printf "| %-16s | %5d | %7d | %18d | %8.1f%% | %18d | %9d | %7d | %8.0f | %8.1f | %9.2fx | %8.1f%% |\n",
               n, r, t, p, 100 * p / tot, peak, pers, other, ms, tps, tps / base, 100 * c / ms }'
done <"$summary"
echo "(TP comm: time inside tp.* collective scopes on rank 0 per step / step time; it includes waiting for the"
echo " other ranks to arrive at the collective, not only moving data. Logs: $out)"
rm -f "$summary"
