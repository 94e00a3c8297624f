#!/usr/bin/env bash
# Tensor parallelism on GPT-2 124M (batch 4, sequence 64, AdamW, float32, one thread per rank):
# tp = 1, 2, 4 (mpirun -np tp) and tp = 2 with --sequence-parallel, plus one process on every core
# as the same-core-count reference. Per run, from the trainer's own output:
#   - parameters per rank            ("parameters per rank: X of Y", rank 0; tp splits evenly)
#   - peak memory per rank           (the end-of-run table: peak allocated | parameters | gradients |
#                                     optimizer state; "other" = peak − the three = activations,
#                                     logits and temporaries)
#   - ms/step and tokens/s           ("mean step (excluding the first)")
#   - time in TP collectives         (--profile on rank 0: the tp.all_reduce / tp.all_gather /
#                                     tp.reduce_scatter scopes, summed, as a share of the step; it
#                                     includes waiting for the slower rank to reach the collective)
# The machine is shared: every configuration runs `rounds` times, round-robin, each run starting
# once the cores have been ≥ 90% idle for 2 s (or after BENCH_IDLE_WAIT seconds, default 60; the
# idle share seen is printed), and the summary takes the run with the fastest step (interference
# only slows a run down), with the median of the rounds next to it.
# Usage: bench/tp_bench.sh [steps] [rounds] [out_dir]   (needs build/ from scripts/build.sh)
# Logs of every run go to out_dir (default build/bench-out/tp).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-5}
rounds=${2:-3}
out=${3:-build/bench-out/tp}
mkdir -p "$out"
trainer=build/bin/train_gpt2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
common=(--model gpt2-124m --batch 4 --seq-len 64 --steps "$steps" --lr 3e-4 --grad-clip 1.0 --profile)

source bench/bench_common.sh

print_machine
echo "== gpt2-124m, batch 4 x seq 64 (256 tokens per step), $steps steps (the first is left out of the means), $rounds rounds"

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

results=$(mktemp)
for round in $(seq 1 "$rounds"); do
  for index in "${!runs[@]}"; do
    IFS='|' read -r name ranks threads launch extra <<<"${runs[$index]}"
    log="$out/$(echo "$name" | tr -c 'a-zA-Z0-9\n' '_').round$round.log"
    read -ra launch_flags <<<"$launch"
    read -ra extra_flags <<<"$extra"
    cmd=(mpirun --oversubscribe "${launch_flags[@]}" -np "$ranks" "$trainer" "${common[@]}" --threads "$threads"
         "${extra_flags[@]}")
    idle=$(wait_idle)
    echo
    echo "== round $round, $name (cores ${idle}% idle before): ${cmd[*]}"
    "${cmd[@]}" >"$log" 2>&1 || { cat "$log"; exit 1; }
    grep -E '^(tensor parallel|parameters per rank|mean step)' "$log"
    sed -n '/^memory per rank/,$p' "$log"
    echo "  TP collectives on rank 0 (ms per step, calls):"
    awk '$1 ~ /^tp\./ {printf "    %-40s %9s ms  %s %s\n", $1, $2, $4, $5}' "$log"

    params=$(sed -n 's/^parameters per rank: \([0-9]*\) of \([0-9]*\).*/\1/p' "$log")
    total=$(sed -n 's/^parameters per rank: \([0-9]*\) of \([0-9]*\).*/\2/p' "$log")
    ms=$(sed -n 's/^mean step[^:]*: \([0-9.]*\) ms.*/\1/p' "$log")
    # Memory table rows: "  rank R: peak | parameters | gradients | optimizer state" (MiB); the
    # rank with the largest peak.
    mem=$(sed -n '/^memory per rank/,$p' "$log" | awk -F'|' '/^  rank/ {
            split($1, a, ":"); peak = a[2] + 0; persistent = $2 + $3 + $4
            if (peak > max_peak) { max_peak = peak; max_persistent = persistent }
          } END { printf "%.0f %.0f %.0f", max_peak, max_persistent, max_peak - max_persistent }')
    comm_ms=$(awk '$1 ~ /^tp\./ {s += $2} END {printf "%.1f", s + 0}' "$log")
    echo "$index|$name|$ranks|$threads|$params|$total|$mem|$ms|$comm_ms" >>"$results"
  done
done

echo
echo "== summary: the fastest of $rounds rounds per run (median ms/step of the rounds in brackets);"
echo "   peak memory: the largest over the job's ranks, MiB; other = peak - parameters - gradients - optimizer state;"
echo "   TP comm: time in tp.* collectives on rank 0 / step time, in the fastest round; 256 tokens per step"
printf "| %-16s | %5s | %7s | %17s | %6s | %8s | %7s | %5s | %15s | %8s | %6s | %7s |\n" \
  run ranks threads "parameters/rank" share "peak MiB" "p+g+opt" other "ms/step (med)" tokens/s "vs tp=1" "TP comm"
printf "| %-16s | %5s | %7s | %17s | %6s | %8s | %7s | %5s | %15s | %8s | %6s | %7s |\n" \
  --- ---: ---: ---: ---: ---: ---: ---: ---: ---: ---: ---:
base_ms=""
for index in "${!runs[@]}"; do
  # The fastest round of this run, and the median of its rounds.
  best=$(awk -F'|' -v i="$index" '$1 == i' "$results" | sort -t'|' -k8,8g | head -1)
  median=$(awk -F'|' -v i="$index" '$1 == i {print $8}' "$results" | sort -g |
           awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
  IFS='|' read -r _ name ranks threads params total mem ms comm_ms <<<"$best"
  read -r peak persistent other <<<"$mem"
  [ -z "$base_ms" ] && base_ms=$ms
  awk -v n="$name" -v r="$ranks" -v t="$threads" -v p="$params" -v tot="$total" -v peak="$peak" \
      -v pers="$persistent" -v other="$other" -v ms="$ms" -v med="$median" -v base="$base_ms" -v c="$comm_ms" \
      'BEGIN { printf "| %-16s | %5d | %7d | %17d | %5.1f%% | %8d | %7d | %5d | %15s | %8.1f | %5.2fx | %6.1f%% |\n",
               n, r, t, p, 100 * p / tot, peak, pers, other, sprintf("%.0f (%.0f)", ms, med), 256 / (ms / 1000),
               base / ms, 100 * c / ms }'
done
echo "(vs tp=1: tokens/s over tp=1 on one thread. Logs: $out)"
rm -f "$results"
