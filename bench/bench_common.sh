# Sourced by the bench scripts that run train_gpt2 in rounds on a shared machine.

# Waits until the cores were at least 90% idle over 2 s, at most $BENCH_IDLE_WAIT seconds (default
# 60); prints the idle share seen.
wait_idle() {
  local waited=0 idle
  while :; do
    idle=$(awk '/^cpu /{t1=0; for(i=2;i<=NF;i++) t1+=$i; i1=$5+$6} END{print t1, i1}' /proc/stat)
    sleep 2
    idle=$(awk -v prev="$idle" '/^cpu /{split(prev, p, " "); t=0; for(i=2;i<=NF;i++) t+=$i;
             printf "%.0f", 100 * ($5 + $6 - p[2]) / (t - p[1])}' /proc/stat)
    waited=$((waited + 2))
    if [ "$idle" -ge 90 ] || [ "$waited" -ge "${BENCH_IDLE_WAIT:-60}" ]; then break; fi
  done
  echo "$idle"
}

# "== machine: …": cores, CPU model, date and load, the first line of every bench's output.
print_machine() {
  echo "== machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); $(date -u +%F); load: $(cut -d' ' -f1-3 /proc/loadavg)"
}
