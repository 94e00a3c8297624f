#!/usr/bin/env python3
"""train_gpt2 with tensor parallelism gives the same loss curve as one process on the same global batch.

Usage: trainer_tensor_parallel.py --trainer PATH --mpiexec PATH [--mpiexec-flag F ...] --work-dir DIR --case NAME
Parity cases run the single-process reference (batch D·B) and the job (tp × dp ranks of batch B), then
compare the per-step losses and grad norms (relative 1e-5) over 10 steps. The vocabulary (201, padded
to 256) is divisible by no tp, so slices hold padding. Other cases: a checkpoint written at tp = 2 is
byte-identical to one process's and loads back into a tp job with one process's loss curve, and
layouts the model cannot be split into end every rank with a usage error (exit 2) naming the flags.
"""
import filecmp
import os
import sys

from trainer_testing import check_usage_error, compare_logs, failed, parse_args, read_log, run

CASES = {
    # name: (tp, dp, micro-batch, extra flags)
    "tp2": (2, 1, 2, []),
    "tp2_sp": (2, 1, 2, ["--sequence-parallel"]),
    "tp4": (4, 1, 2, []),
    "tp4_sp": (4, 1, 2, ["--sequence-parallel"]),
    "dp2_tp2": (2, 2, 1, []),
    "dp2_tp2_sp": (2, 2, 1, ["--sequence-parallel"]),
    "dp2_tp2_sp_zero1_accum2": (2, 2, 1, ["--sequence-parallel", "--zero", "1", "--grad-accum", "2"]),
}
STEPS = 10
MODEL = ["--model", "gpt-mini", "--layers", "2", "--channels", "64", "--heads", "4", "--vocab", "201",
         "--seq-len", "32", "--lr", "3e-3", "--warmup", "2", "--weight-decay", "0.1", "--grad-clip", "1.0",
         "--threads", "1"]
BAD_LAYOUTS = {
    # name: (flags, words the error must contain)
    "heads_not_divisible": (["--tp", "2", "--heads", "3", "--channels", "48"], ["--tp 2", "--heads 3"]),
    "channels_not_divisible": (["--tp", "2", "--heads", "3", "--channels", "63"], ["--tp 2", "--channels 63"]),
    "seq_len_not_divisible": (["--tp", "2", "--sequence-parallel", "--seq-len", "31"], ["--seq-len 31", "--tp 2"]),
}


def check_parity(args, name):
    tp, dp, batch, extra = CASES[name]
    accum = extra[extra.index("--grad-accum") + 1] if "--grad-accum" in extra else "1"
    reference_log = os.path.join(args.work_dir, f"{name}_reference.jsonl")
    parallel_log = os.path.join(args.work_dir, f"{name}_tp.jsonl")
    reference = run([args.trainer] + MODEL + ["--steps", str(STEPS), "--batch", str(batch * dp),
                     "--grad-accum", accum, "--log-jsonl", reference_log])
    parallel = run(args.mpiexec + ["-np", str(tp * dp), args.trainer] + MODEL + extra +
                   ["--steps", str(STEPS), "--batch", str(batch), "--tp", str(tp), "--dp", str(dp),
                    "--log-jsonl", parallel_log])
    if failed("reference", reference) or failed("tensor parallel", parallel):
        return 1
    expected_line = f"tensor parallel: tp {tp}"
    if expected_line not in parallel.stdout:
        print(f"missing '{expected_line}' in the job's output:\n{parallel.stdout}")
        return 1
    return compare_logs(read_log(reference_log), read_log(parallel_log), STEPS, "tp")


def check_checkpoint(args):
    # Initial weights written at tp = 2 (pieces gathered) equal one process's, byte for byte.
    single = os.path.join(args.work_dir, "single.bin")
    sharded = os.path.join(args.work_dir, "tp2.bin")
    results = [
        run([args.trainer] + MODEL + ["--steps", "0", "--checkpoint-out", single]),
        run(args.mpiexec + ["-np", "2", args.trainer] + MODEL + ["--steps", "0", "--tp", "2",
                                                                  "--checkpoint-out", sharded]),
    ]
    if any(failed("checkpoint writer", r) for r in results):
        return 1
    if not filecmp.cmp(single, sharded, shallow=False):
        print("the tp = 2 checkpoint differs from the single-process one")
        return 1
    # Loading it back: tp = 2 with sequence parallelism continues as one process does.
    steps = 4
    logs = [os.path.join(args.work_dir, f"resume_{label}.jsonl") for label in ("reference", "tp")]
    flags = ["--threads", "1", "--seq-len", "32", "--lr", "3e-3", "--steps", str(steps), "--batch", "2",
             "--init-from", sharded]
    results = [
        run([args.trainer] + flags + ["--log-jsonl", logs[0]]),
        run(args.mpiexec + ["-np", "2", args.trainer] + flags + ["--tp", "2", "--sequence-parallel",
                                                                  "--log-jsonl", logs[1]]),
    ]
    if any(failed("resume", r) for r in results):
        return 1
    return compare_logs(read_log(logs[0]), read_log(logs[1]), steps)


def check_bad_layout(args, name):
    flags, expected = BAD_LAYOUTS[name]
    return check_usage_error(args.mpiexec + ["-np", "2", args.trainer, "--steps", "1"] + flags, expected)


def main():
    args = parse_args()
    if args.case in CASES:
        return check_parity(args, args.case)
    if args.case == "checkpoint":
        return check_checkpoint(args)
    if args.case in BAD_LAYOUTS:
        return check_bad_layout(args, args.case)
    print(f"unknown case {args.case}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
