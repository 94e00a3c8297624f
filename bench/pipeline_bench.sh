#!/usr/bin/env bash
# Pipeline parallelism on a balanced GPT (8 equal blocks of 384 channels, 6 heads, byte vocabulary;
# batch 16 x sequence 128 per step, split into M = 8 micro-batches of 2 sequences; AdamW, float32,
# one thread per rank): pp = 2 and pp = 4, each with the schedules gpipe, 1f1b, interleaved (V = 2)
# and zb-h1. Eight blocks divide by pp·V for every run, so the stages cost the same (the first also
# embeds, the last also runs the 256-wide head and the loss: a few % of a stage).
# Per run, from the trainer's own output:
#   - the measured bubble ("pipeline bubble: X% measured ..., Y% in theory"): per rank, the share of
#     each step's schedule window in which it did not run a forward/backward/W pass, averaged over
#     ranks and steps after the first; Y is the schedule model with equal-cost stages
#     (parallel/pipeline/schedule_simulation.h); the table also gives (p−1)/(m+p−1);
#   - per stage: peak live micro-batches and peak allocated memory; "act" = peak − parameters −
#     gradients − optimizer state (activations kept for backward, transfers and temporaries).
# pp = 4 runs 4 ranks on this machine's cores even when there are fewer (oversubscribed): its
# timings then measure core sharing as much as the schedule.
# One 1f1b run at pp = 2 also writes a Chrome trace (one file per rank, and the ranks merged into
# one file when python3 is there): open it in https://ui.perfetto.dev or chrome://tracing.
# The machine is shared: every configuration runs `rounds` times, round-robin, each run starting
# once the cores have been ≥ 90% idle for 2 s (or after BENCH_IDLE_WAIT seconds, default 60; the
# idle share seen is printed), and the summary takes the run with the fastest step, with the
# median bubble of the rounds next to it.
# Usage: bench/pipeline_bench.sh [steps] [rounds] [out_dir]   (needs build/ from scripts/build.sh)
# Logs and traces go to out_dir (default build/bench-out/pipeline).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-6}
rounds=${2:-3}
out=${3:-build/bench-out/pipeline}
mkdir -p "$out"
trainer=build/bin/train_gpt2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
micro_batches=8
model=(--model gpt-mini --layers 8 --channels 384 --heads 6 --seq-len 128 --batch 16)
common=("${model[@]}" --steps "$steps" --lr 3e-4 --grad-clip 1.0 --threads 1)

source bench/bench_common.sh

print_machine
echo "== model: ${model[*]}; $micro_batches micro-batches; $steps steps (the first is left out of the means), $rounds rounds"

results=$(mktemp)
single_ms=""
for round in $(seq 1 "$rounds"); do
  echo
  idle=$(wait_idle)
  echo "== round $round, reference: one process, one thread, the whole batch at once (no pipeline; cores ${idle}% idle before)"
  "$trainer" "${common[@]}" >"$out/single.round$round.log" 2>&1 || { cat "$out/single.round$round.log"; exit 1; }
  ms=$(sed -n 's/^mean step[^:]*: \([0-9.]*\) ms.*/\1/p' "$out/single.round$round.log")
  single_ms=$(awk -v a="$single_ms" -v b="$ms" 'BEGIN {print (a == "" || b < a) ? b : a}')
  grep -E '^(model|mean step)' "$out/single.round$round.log"
  sed -n '/^memory per rank/,$p' "$out/single.round$round.log"

  for pp in 2 4; do
    for schedule in gpipe 1f1b interleaved zb-h1; do
      flags=(--pp "$pp" --schedule "$schedule" --micro-batches "$micro_batches")
      [ "$schedule" = interleaved ] && flags+=(--virtual-stages 2)
      log="$out/pp${pp}_${schedule}.round$round.log"
      cmd=(mpirun --oversubscribe -np "$pp" "$trainer" "${common[@]}" "${flags[@]}")
      idle=$(wait_idle)
      echo
      echo "== round $round, pp=$pp $schedule (cores ${idle}% idle before): ${cmd[*]}"
      "${cmd[@]}" >"$log" 2>&1 || { cat "$log"; exit 1; }
      grep -E '^(pipeline:|mean step)' "$log"
      sed -n '/^pipeline per rank/,$p' "$log"

      ms=$(sed -n 's/^mean step[^:]*: \([0-9.]*\) ms.*/\1/p' "$log")
      measured=$(sed -n 's/^pipeline bubble: \([0-9.]*\)% measured.*/\1/p' "$log")
      theory=$(sed -n 's/^pipeline bubble: .*, \([0-9.]*\)% in theory.*/\1/p' "$log")
      # Rows: "  rank R: pp S | bubble% | live | peak | parameters | gradients | optimizer state".
      stages=$(awk -F'|' '/^  rank [0-9]+: pp/ {
                 gsub(/ /, "", $2); live = $3 + 0; peak = $4 + 0; act = $4 - $5 - $6 - $7
                 bubbles = bubbles (bubbles == "" ? "" : "/") $2
                 lives = lives (lives == "" ? "" : "/") live
                 peaks = peaks (peaks == "" ? "" : "/") sprintf("%.0f", peak)
                 acts = acts (acts == "" ? "" : "/") sprintf("%.0f", act)
               } END { print bubbles "|" lives "|" peaks "|" acts }' "$log")
      echo "$pp|$schedule|$ms|$measured|$theory|$stages" >>"$results"
    done
  done
done

echo
echo "== trace: pp=2 1f1b, 3 steps"
trace="$out/trace_pp2_1f1b.json"
mpirun --oversubscribe -np 2 "$trainer" "${model[@]}" --steps 3 --lr 3e-4 --threads 1 --pp 2 --schedule 1f1b \
  --micro-batches "$micro_batches" --trace "$trace" >"$out/trace.log" 2>&1 || { cat "$out/trace.log"; exit 1; }
grep '^wrote the timeline' "$out/trace.log"
if command -v python3 >/dev/null; then
  merged="$out/trace_pp2_1f1b.merged.json"
  python3 - "$merged" "$out"/trace_pp2_1f1b.rank*.json <<'EOF'
import json, sys
events = []
for path in sys.argv[2:]:
    events += json.load(open(path))["traceEvents"]
json.dump({"traceEvents": events, "displayTimeUnit": "ms"}, open(sys.argv[1], "w"))
EOF
  echo "merged both ranks into $merged (open in https://ui.perfetto.dev or chrome://tracing)"
fi

echo
echo "== summary: M = $micro_batches micro-batches, one thread per rank; the fastest of $rounds rounds per run;"
echo "   one process on one thread (fastest round): ${single_ms} ms/step"
echo "   bubble: measured in the fastest round (mean over ranks) [median of the rounds] | the schedule model with"
echo "   equal-cost stages | (p-1)/(m+p-1); per stage (rank 0/1/...): bubble, peak live micro-batches, peak"
echo "   allocated MiB, act = peak - parameters - gradients - optimizer state (MiB)"
printf "| %2s | %-11s | %7s | %6s | %-15s | %6s | %13s | %-27s | %-8s | %-15s | %-15s |\n" \
  pp schedule ms/step "vs 1x1" "measured [med]" model "(p-1)/(m+p-1)" "bubble per stage" live "peak MiB" "act MiB"
printf "| %2s | %-11s | %7s | %6s | %-15s | %6s | %13s | %-27s | %-8s | %-15s | %-15s |\n" \
  ---: --- ---: ---: ---: ---: ---: --- --- --- ---
for pp in 2 4; do
  for schedule in gpipe 1f1b interleaved zb-h1; do
    best=$(awk -F'|' -v p="$pp" -v s="$schedule" '$1 == p && $2 == s' "$results" | sort -t'|' -k3,3g | head -1)
    median=$(awk -F'|' -v p="$pp" -v s="$schedule" '$1 == p && $2 == s {print $4}' "$results" | sort -g |
             awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
    IFS='|' read -r _ _ ms measured theory bubbles lives peaks acts <<<"$best"
    awk -v pp="$pp" -v s="$schedule" -v ms="$ms" -v one="$single_ms" -v meas="$measured" -v med="$median" \
        -v th="$theory" -v m="$micro_batches" -v b="$bubbles" -v l="$lives" -v pk="$peaks" -v a="$acts" \
        'BEGIN { printf "| %2d | %-11s | %7.0f | %5.2fx | %5.1f%% [%5.1f%%] | %5.1f%% | %12.1f%% | %-27s | %-8s | %-15s | %-15s |\n",
                 pp, s, ms, one / ms, meas, med, th, 100 * (pp - 1) / (m + pp - 1), b, l, pk, a }'
  done
done
echo "(vs 1x1: speed-up over one process on one thread. Logs and traces: $out)"
rm -f "$results"
