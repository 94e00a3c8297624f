#!/usr/bin/env python3
"""train_gpt2 under mpirun gives the same loss curve as one process on the same global batch.

Usage: trainer_data_parallel.py --trainer PATH --mpiexec PATH [--mpiexec-flag F ...] --work-dir DIR --case NAME
Each case runs the single-process reference (batch D·B, accumulation K) and the data-parallel job
(D ranks of batch B, accumulation K, a ZeRO stage), then compares the per-step losses (relative
1e-5) and grad norms (relative 1e-5). Also checks that bad layout flags end every rank with an error.
"""
import json
import os
import subprocess
import sys
import time

from trainer_testing import check_usage_error, compare_logs, failed, parse_args, read_log, run

CASES = {
    # name: (ranks, micro-batch, accumulation, zero stage, bucket MB)
    "dp2": (2, 2, 1, 0, 0.05),
    "dp4": (4, 1, 1, 0, 0.05),
    "dp2_zero1": (2, 2, 1, 1, 0.05),
    "dp2_zero2": (2, 2, 1, 2, 0.05),
    "dp2_accum2": (2, 1, 2, 0, 25),
    "dp2_zero2_accum2": (2, 1, 2, 2, 0.05),
}
STEPS = 10
MODEL = ["--model", "gpt-mini", "--layers", "2", "--channels", "64", "--heads", "4", "--seq-len", "32",
         "--lr", "3e-3", "--warmup", "2", "--weight-decay", "0.1", "--grad-clip", "1.0", "--threads", "1"]


def check_parity(args, name):
    ranks, batch, accum, zero, bucket_mb = CASES[name]
    reference_log = os.path.join(args.work_dir, f"{name}_reference.jsonl")
    parallel_log = os.path.join(args.work_dir, f"{name}_dp.jsonl")
    reference = run([args.trainer] + MODEL + ["--steps", str(STEPS), "--batch", str(batch * ranks),
                     "--grad-accum", str(accum), "--log-jsonl", reference_log])
    parallel = run(args.mpiexec + ["-np", str(ranks), args.trainer] + MODEL +
                   ["--steps", str(STEPS), "--batch", str(batch), "--grad-accum", str(accum), "--zero", str(zero),
                    "--bucket-mb", str(bucket_mb), "--log-jsonl", parallel_log])
    if failed("reference", reference) or failed("data parallel", parallel):
        return 1
    return compare_logs(read_log(reference_log), read_log(parallel_log), STEPS, "dp")


def check_bad_layout(args, flags, expected):
    return check_usage_error(args.mpiexec + ["-np", "2", args.trainer, "--steps", "1"] + flags, expected)


def check_stop_signal(args):
    """SIGTERM to one rank: every rank agrees to stop at the same step, finishes it, and exits 0.
    (Signalling mpirun itself makes Open MPI kill the ranks about a second later; the ranks' own
    stop path is what this checks.)"""
    import signal
    log = os.path.join(args.work_dir, "stop.jsonl")
    if os.path.exists(log):
        os.remove(log)
    command = args.mpiexec + ["-np", "2", args.trainer] + MODEL + ["--steps", "1000000", "--batch", "2",
                                                                   "--log-jsonl", log]
    print("$ " + " ".join(command), flush=True)
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not os.path.exists(log) or sum(1 for _ in open(log)) < 3):
        time.sleep(0.2)
    ranks = subprocess.run(["pgrep", "-P", str(job.pid)], capture_output=True, text=True).stdout.split()
    if len(ranks) != 2:
        job.kill()
        print(f"expected 2 rank processes under mpirun, found {ranks}")
        return 1
    os.kill(int(ranks[1]), signal.SIGTERM)
    start = time.time()
    try:
        out, err = job.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        job.kill()
        print("the job did not stop within 60 s of SIGTERM")
        return 1
    print(f"stopped {time.time() - start:.1f} s after SIGTERM; stdout tail:\n{out[-600:]}\nstderr:\n{err[-600:]}")
    lines = [json.loads(line) for line in open(log)]  # every logged line is complete JSON
    stopped = "stop requested: ending after" in out
    both_reported = "rank 0:" in out and "rank 1:" in out  # the end-of-run memory report from every rank
    return 0 if job.returncode == 0 and stopped and both_reported and len(lines) >= 3 else 1


def main():
    args = parse_args()
    if args.case in CASES:
        return check_parity(args, args.case)
    if args.case == "stop_signal":
        return check_stop_signal(args)
    if args.case == "bad_layout":
        return check_bad_layout(args, ["--dp", "3"], ["--dp", "3"])
    if args.case == "bad_zero_stage":
        return check_bad_layout(args, ["--zero", "3"], ["--zero"])
    print(f"unknown case {args.case}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
