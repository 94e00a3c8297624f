#!/usr/bin/env bash
# Runs an mpirun job and checks how it ends: exit status, output, elapsed time, and that no rank
# process outlives it. Optionally signals the job once its output shows it is running.
#
#   run_job.sh [checks] -- mpirun -np 2 ... program args
#
#   --expect-exit zero|nonzero|any|N   how the job must exit (default nonzero)
#   --max-seconds S                    the job must end within S (whole) seconds of its start
#                                      (default 30)
#   --expect REGEX                     the output (stdout+stderr) must match (extended regex)
#   --expect-lines REGEX N             exactly N output lines must match
#   --expect-file PATH REGEX           after the job, PATH must exist and match
#   --signal SIG                       send SIG once the output matches --signal-after
#   --signal-after REGEX               default "running"
#   --signal-target mpirun|ranks|rank:N  whom to signal: mpirun, every rank, or one rank
#                                      (rank N = the Nth child of mpirun by start order)
#   --signal-repeat N                  send the signal N times, 0.5 s apart (default 1)
set -u

expect_exit=nonzero
max_seconds=30
expects=()
line_expects=()
file_expects=()
signal=""
signal_after="running"
signal_target=ranks
signal_repeat=1

while [[ $# -gt 0 ]]; do
  case "$1" in
    --expect-exit) expect_exit="$2"; shift 2 ;;
    --max-seconds) max_seconds="$2"; shift 2 ;;
    --expect) expects+=("$2"); shift 2 ;;
    --expect-lines) line_expects+=("$2" "$3"); shift 3 ;;
    --expect-file) file_expects+=("$2" "$3"); shift 3 ;;
    --signal) signal="$2"; shift 2 ;;
    --signal-after) signal_after="$2"; shift 2 ;;
    --signal-target) signal_target="$2"; shift 2 ;;
    --signal-repeat) signal_repeat="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "run_job.sh: unknown option $1" >&2; exit 64 ;;
  esac
done
[[ $# -gt 0 ]] || { echo "run_job.sh: no command after --" >&2; exit 64; }

output=$(mktemp)
trap 'rm -f "$output"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

start_ns=$(date +%s%N)
"$@" >"$output" 2>&1 &
job=$!
elapsed_ms() { echo $(( ($(date +%s%N) - start_ns) / 1000000 )); }
elapsed() { local ms; ms=$(elapsed_ms); printf '%d.%03d' $((ms / 1000)) $((ms % 1000)); }
over_time() { (( $(elapsed_ms) > max_seconds * 1000 )); }

# The rank processes: mpirun's children (on one node Open MPI starts them directly).
rank_pids() { pgrep -P "$job" | sort -n; }

ranks_seen=""
if [[ -n "$signal" ]]; then
  until grep -Eq "$signal_after" "$output"; do
    if ! kill -0 "$job" 2>/dev/null; then fail "the job ended before its output matched '$signal_after'"; break; fi
    if over_time; then fail "the output did not match '$signal_after' within $max_seconds s"; break; fi
    sleep 0.05
  done
  ranks_seen=$(rank_pids)
  # Every rank must be running before it is signalled (each prints the marker line).
  sleep 0.3
  for ((i = 0; i < signal_repeat; i++)); do
    case "$signal_target" in
      mpirun) targets=$job ;;
      ranks) targets=$ranks_seen ;;
      rank:*) targets=$(echo "$ranks_seen" | sed -n "$(( ${signal_target#rank:} + 1 ))p") ;;
      *) echo "run_job.sh: bad --signal-target $signal_target" >&2; exit 64 ;;
    esac
    echo "run_job.sh: sending SIG$signal to $signal_target ($(echo $targets)) at $(elapsed) s"
    kill -s "$signal" $targets 2>/dev/null
    [[ $i -lt $((signal_repeat - 1)) ]] && sleep 0.5
  done
else
  sleep 0.2
  ranks_seen=$(rank_pids)
fi

while kill -0 "$job" 2>/dev/null; do
  if over_time; then
    fail "the job did not end within $max_seconds s; killing it"
    pkill -KILL -P "$job" 2>/dev/null
    kill -KILL "$job" 2>/dev/null
    break
  fi
  sleep 0.05
done
wait "$job"
status=$?
took=$(elapsed)

echo "----- job output -----"
cat "$output"
echo "----- end of job output (exit status $status after ${took} s) -----"

case "$expect_exit" in
  zero) [[ $status -eq 0 ]] || fail "expected exit status 0, got $status" ;;
  nonzero) [[ $status -ne 0 ]] || fail "expected a non-zero exit status, got 0" ;;
  any) ;;
  *) [[ $status -eq $expect_exit ]] || fail "expected exit status $expect_exit, got $status" ;;
esac
for pattern in "${expects[@]+"${expects[@]}"}"; do
  grep -Eq -- "$pattern" "$output" || fail "output does not match: $pattern"
done
for ((i = 0; i < ${#line_expects[@]}; i += 2)); do
  count=$(grep -Ec -- "${line_expects[i]}" "$output")
  [[ $count -eq ${line_expects[i + 1]} ]] ||
    fail "expected ${line_expects[i + 1]} lines matching '${line_expects[i]}', found $count"
done
for ((i = 0; i < ${#file_expects[@]}; i += 2)); do
  if [[ ! -f ${file_expects[i]} ]]; then fail "file ${file_expects[i]} was not written"
  else grep -Eq -- "${file_expects[i + 1]}" "${file_expects[i]}" || fail "${file_expects[i]} does not match: ${file_expects[i + 1]}"
  fi
done
# Every rank must be gone, not just mpirun. A zombie has ended (it waits to be reaped by init).
alive() { local state; state=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $state != Z* ]]; }
sleep 0.2
for pid in $ranks_seen; do
  if alive "$pid"; then
    fail "rank process $pid outlived the job"
    kill -KILL "$pid" 2>/dev/null
  fi
done

if [[ $failures -gt 0 ]]; then
  echo "run_job.sh: $failures check(s) failed"
  exit 1
fi
echo "run_job.sh: all checks passed (${took} s)"
