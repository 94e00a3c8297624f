#!/usr/bin/env python3
"""train_gpt2 --dtype bf16 (mixed precision: bf16 activations, fp32 master weights, gradients and
optimizer state) against f32 and across parallel layouts.

Usage: trainer_mixed_precision.py --trainer PATH --mpiexec PATH [--mpiexec-flag F ...] --work-dir DIR --case NAME
Cases:
  bf16_tracks_f32   one process, 10 steps: every bf16 loss within 1e-2 of the f32 loss (bf16 precision),
                    and the bf16 run learns.
  dp2, pp2_1f1b, pp2_zbh1, tp2_sp, dp2_tp2
                    the bf16 job against one bf16 process on the same global batch (the pipeline moves
                    bf16 activations and their gradients between stages; tensor parallelism all-reduces,
                    gathers and reduce-scatters bf16 activations). Data and pipeline parallelism sum fp32
                    weight gradients over parts of the batch (replicas, micro-batches) where one process
                    forms one product over all of it; tensor parallelism rounds each rank's partial
                    product to bf16 before summing it over ranks (as Megatron does). Both are last-bit
                    differences, which f32 keeps at 1e-7 but bf16 rounding of the following
                    activations amplifies to about 1e-4 over 10 steps. So dp and pp are held to 1e-3
                    (relative, loss and norm). Tensor parallelism's extra rounding moves the gradient
                    norm by up to ~2e-3 (the norm is dominated by few large gradients, and bf16 itself
                    moves it by 7e-4 at step 0 against f32 on this model), so its norm bound is 5e-3,
                    its loss bound 1e-3. All stay far below what a wrong layout gives (a missing
                    gradient average doubles the norm; a missing tp reduction or a stage computing on
                    the wrong activation shifts the loss at step 0); the f32 parity tests hold each
                    layout's arithmetic to 1e-5.
  weight_copies_once_per_step
                    --profile's weight_copy calls per step: one per converted master weight (12 per block,
                    the final LayerNorm's 2 and the tied head's 1), not one per micro-batch and forward —
                    with --grad-accum 2 --recompute in one process, and on rank 0 (2 blocks) of a pp=2
                    1F1B job with 4 micro-batches (fn::WorkingCopies, opened per step by the trainers and
                    by the pipeline).
  unknown_dtype     a usage error (exit 2 on every rank) naming the flag.
"""
import os
import re
import sys

from trainer_testing import check_usage_error, compare_logs, failed, parse_args, read_log, run

STEPS = 10
MODEL = ["--model", "gpt-mini", "--layers", "4", "--channels", "64", "--heads", "4", "--vocab", "201",
         "--seq-len", "32", "--lr", "3e-3", "--warmup", "2", "--weight-decay", "0.1", "--grad-clip", "1.0",
         "--threads", "1", "--steps", str(STEPS)]
# name: (ranks, per-replica batch, data-parallel replicas, job flags, (loss, norm) relative tolerances)
PARITY = {
    "dp2": (2, 2, 2, ["--dp", "2"], (1e-3, 1e-3)),
    "pp2_1f1b": (2, 4, 1, ["--pp", "2", "--micro-batches", "2"], (1e-3, 1e-3)),
    "pp2_zbh1": (2, 4, 1, ["--pp", "2", "--schedule", "zb-h1", "--micro-batches", "4"], (1e-3, 1e-3)),
    "tp2_sp": (2, 4, 1, ["--tp", "2", "--sequence-parallel"], (1e-3, 5e-3)),
    "dp2_tp2": (4, 2, 2, ["--dp", "2", "--tp", "2"], (1e-3, 5e-3)),
}


def check_tracks_f32(args):
    logs = {}
    for dtype in ("f32", "bf16"):
        logs[dtype] = os.path.join(args.work_dir, f"{dtype}.jsonl")
        result = run([args.trainer] + MODEL + ["--batch", "4", "--dtype", dtype, "--log-jsonl", logs[dtype]])
        if failed(dtype, result):
            return 1
        if f"compute {dtype}" not in result.stdout:
            print(f"the {dtype} run does not report its compute dtype:\n{result.stdout}")
            return 1
    f32, bf16 = read_log(logs["f32"]), read_log(logs["bf16"])
    status = 0 if len(f32) == len(bf16) == STEPS else 1
    print(f"{'step':>4} {'f32 loss':>12} {'bf16 loss':>12} {'|diff|':>9}")
    for a, b in zip(f32, bf16):
        diff = abs(a["loss"] - b["loss"])
        bad = diff > 1e-2
        status |= bad
        print(f"{a['step']:>4} {a['loss']:>12.6f} {b['loss']:>12.6f} {diff:>9.2e}" + ("  FAIL" if bad else ""))
    if bf16[-1]["loss"] > bf16[0]["loss"] - 0.5:
        print("the bf16 run did not learn")
        status = 1
    return status


def check_parity(args, name):
    ranks, batch, dp, flags, tolerance = PARITY[name]
    reference_log = os.path.join(args.work_dir, "reference.jsonl")
    job_log = os.path.join(args.work_dir, "job.jsonl")
    reference = run([args.trainer] + MODEL + ["--dtype", "bf16", "--batch", str(batch * dp),
                                              "--log-jsonl", reference_log])
    job = run(args.mpiexec + ["-np", str(ranks), args.trainer] + MODEL + flags +
              ["--dtype", "bf16", "--batch", str(batch), "--log-jsonl", job_log])
    if failed("reference", reference) or failed(name, job):
        return 1
    loss_tolerance, norm_tolerance = tolerance
    return compare_logs(read_log(reference_log), read_log(job_log), STEPS, name, loss_tolerance, norm_tolerance)


def weight_copies_per_step(name, result):
    match = re.search(r"^  weight_copy +[0-9.]+ ms +\((\d+) calls\)$", result.stdout, re.MULTILINE)
    if not match:
        print(f"{name}: no weight_copy row in the profile:\n{result.stdout}")
        return -1
    return int(match.group(1))


def check_weight_copies_once_per_step(args):
    layers = 4
    profiled = MODEL + ["--dtype", "bf16", "--batch", "4", "--recompute", "--profile"]
    cases = [("one process, --grad-accum 2", [args.trainer] + profiled + ["--grad-accum", "2"], 12 * layers + 3),
             ("pp2 1f1b rank 0", args.mpiexec + ["-np", "2", args.trainer] + profiled +
              ["--pp", "2", "--micro-batches", "4"], 12 * layers // 2)]
    status = 0
    for name, command, expected in cases:
        result = run(command)
        if failed(name, result):
            return 1
        calls = weight_copies_per_step(name, result)
        print(f"{name}: {calls} weight copies per step, expected {expected}")
        status |= calls != expected
    return status


def main():
    args = parse_args()
    if args.case == "bf16_tracks_f32":
        return check_tracks_f32(args)
    if args.case in PARITY:
        return check_parity(args, args.case)
    if args.case == "weight_copies_once_per_step":
        return check_weight_copies_once_per_step(args)
    if args.case == "unknown_dtype":
        return check_usage_error(args.mpiexec + ["-np", "2", args.trainer] + MODEL + ["--dp", "2", "--dtype", "f16"],
                                 ["--dtype", "f32 or bf16", "'f16'"])
    print(f"unknown case {args.case}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
