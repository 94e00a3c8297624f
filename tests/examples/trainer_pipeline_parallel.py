#!/usr/bin/env python3
"""train_gpt2 with pipeline parallelism gives the same loss curve as one process on the same global batch.

Usage: trainer_pipeline_parallel.py --trainer PATH --mpiexec PATH [--mpiexec-flag F ...] --work-dir DIR --case NAME
Parity cases run the single-process reference (batch D·B, the same --grad-accum) and the job
(pp × tp × dp ranks, each data-parallel replica reading batch B split into micro-batches), then
compare the per-step losses and gradient norms (relative 1e-5) over 10 steps, with clipping and
weight decay active. They cover every schedule at pp = 2 and 4, an explicit uneven split, and the
compositions with data parallelism (ZeRO), tensor parallelism (sequence parallel) and all three on
8 ranks. The trace case checks every rank's Chrome trace and the printed bubble; the checkpoint
case, that pipelined jobs write one process's checkpoint and resume from one as it does; the sample
case, that sampling from the gathered model equals one process's sample; the bad-layout
cases check that every rank ends with a usage error (exit 2) naming the flags.
"""
import filecmp
import os
import sys

from trainer_testing import check_trace_files, check_usage_error, compare_logs, failed, parse_args, read_log, run

# name: (pp, tp, dp, per-replica batch, flags for both runs, flags for the pipelined job only)
CASES = {
    "pp2_gpipe": (2, 1, 1, 4, [], ["--schedule", "gpipe", "--micro-batches", "4"]),
    "pp2_1f1b": (2, 1, 1, 4, [], ["--schedule", "1f1b", "--micro-batches", "4"]),
    "pp2_interleaved": (2, 1, 1, 4, [], ["--schedule", "interleaved", "--virtual-stages", "2", "--micro-batches", "4"]),
    "pp2_zbh1": (2, 1, 1, 4, [], ["--schedule", "zb-h1", "--micro-batches", "4"]),
    "pp2_split_1_3": (2, 1, 1, 2, [], ["--pp-split", "1,3", "--micro-batches", "2"]),
    "pp2_1f1b_accum2_recompute": (2, 1, 1, 2, ["--grad-accum", "2", "--recompute"], ["--micro-batches", "2"]),
    "pp4_gpipe": (4, 1, 1, 4, [], ["--schedule", "gpipe", "--micro-batches", "4"]),
    "pp4_1f1b": (4, 1, 1, 4, [], ["--schedule", "1f1b", "--micro-batches", "4"]),
    "pp4_interleaved": (4, 1, 1, 4, ["--layers", "8"],
                        ["--schedule", "interleaved", "--virtual-stages", "2", "--micro-batches", "4"]),
    "pp4_zbh1": (4, 1, 1, 4, [], ["--schedule", "zb-h1", "--micro-batches", "4"]),
    "dp2_pp2_zero1": (2, 1, 2, 2, [], ["--zero", "1", "--micro-batches", "2"]),
    "tp2_pp2_sp": (2, 2, 1, 2, [], ["--sequence-parallel", "--micro-batches", "2"]),
    "dp2_tp2_pp2": (2, 2, 2, 2, [], ["--micro-batches", "2"]),
    "dp2_tp2_pp2_zbh1_sp_zero1": (2, 2, 2, 2, [], ["--schedule", "zb-h1", "--sequence-parallel", "--zero", "1",
                                                   "--micro-batches", "2"]),
}
STEPS = 10
MODEL = ["--model", "gpt-mini", "--layers", "4", "--channels", "64", "--heads", "4", "--vocab", "201",
         "--seq-len", "32", "--lr", "3e-3", "--warmup", "2", "--weight-decay", "0.1", "--grad-clip", "1.0",
         "--threads", "1"]
BAD_LAYOUTS = {
    # name: (ranks, flags, words the error must contain)
    "layers_less_than_pp": (4, ["--pp", "4", "--layers", "2"], ["--pp 4", "2 layers", "4 stages"]),
    "split_not_summing": (2, ["--pp", "2", "--pp-split", "1,2"], ["--pp 2", "sums to 3", "4 layers"]),
    "split_wrong_length": (2, ["--pp", "2", "--pp-split", "1,1,2"], ["--pp 2", "3 entries", "2 stages"]),
    "micro_batches_not_dividing": (2, ["--pp", "2", "--batch", "4", "--micro-batches", "3"],
                                   ["--batch 4", "--micro-batches 3"]),
    "interleaved_micro_batches": (2, ["--pp", "2", "--schedule", "interleaved", "--virtual-stages", "2",
                                      "--batch", "3", "--micro-batches", "3"],
                                  ["--schedule interleaved", "micro-batches (3)", "pp (2)"]),
    "pipeline_flags_without_pp": (2, ["--dp", "2", "--micro-batches", "2"], ["--micro-batches", "--pp > 1"]),
    # Checked at startup: a trace that cannot be written must not cost the run.
    "trace_directory_missing": (2, ["--pp", "2", "--trace", "/nonexistent-meridian-dir/t.json"],
                                ["--trace", "/nonexistent-meridian-dir", "does not exist"]),
}


def check_parity(args, name):
    pp, tp, dp, batch, shared, pipelined = CASES[name]
    reference_log = os.path.join(args.work_dir, f"{name}_reference.jsonl")
    parallel_log = os.path.join(args.work_dir, f"{name}_pipeline.jsonl")
    reference = run([args.trainer] + MODEL + shared + ["--steps", str(STEPS), "--batch", str(batch * dp),
                                                       "--log-jsonl", reference_log])
    parallel = run(args.mpiexec + ["-np", str(pp * tp * dp), args.trainer] + MODEL + shared + pipelined +
                   ["--steps", str(STEPS), "--batch", str(batch), "--pp", str(pp), "--tp", str(tp), "--dp", str(dp),
                    "--log-jsonl", parallel_log])
    if failed("reference", reference) or failed("pipeline parallel", parallel):
        return 1
    expected_line = f"pipeline: pp {pp}"
    if expected_line not in parallel.stdout:
        print(f"missing '{expected_line}' in the job's output:\n{parallel.stdout}")
        return 1
    return compare_logs(read_log(reference_log), read_log(parallel_log), STEPS, "pipeline")


def check_trace(args):
    trace = os.path.join(args.work_dir, "timeline.json")
    result = run(args.mpiexec + ["-np", "2", args.trainer] + MODEL +
                 ["--steps", "3", "--batch", "4", "--pp", "2", "--micro-batches", "4", "--trace", trace])
    if failed("traced job", result):
        return 1
    if "pipeline bubble:" not in result.stdout:
        print(f"the job printed no bubble fraction:\n{result.stdout}")
        return 1
    return check_trace_files(args.work_dir, 2, 3 * 4)


def check_checkpoint(args):
    # Initial weights written by pipelined jobs (stages gathered to rank 0; with tp, pieces gathered
    # first) equal one process's, byte for byte.
    single = os.path.join(args.work_dir, "single.bin")
    jobs = {
        "dp2_tp2_pp2": (8, ["--dp", "2", "--tp", "2", "--pp", "2"]),
        "pp2_interleaved": (2, ["--pp", "2", "--schedule", "interleaved", "--virtual-stages", "2",
                                "--micro-batches", "2", "--batch", "2"]),
    }
    results = [run([args.trainer] + MODEL + ["--steps", "0", "--checkpoint-out", single])]
    for name, (ranks, flags) in jobs.items():
        results.append(run(args.mpiexec + ["-np", str(ranks), args.trainer] + MODEL + flags +
                           ["--steps", "0", "--checkpoint-out", os.path.join(args.work_dir, name + ".bin")]))
    if any(failed("checkpoint writer", r) for r in results):
        return 1
    for name in jobs:
        if not filecmp.cmp(single, os.path.join(args.work_dir, name + ".bin"), shallow=False):
            print(f"the {name} checkpoint differs from the single-process one")
            return 1
    # Trained, saved, loaded back: the pipelined job continues as one process does from its file.
    steps = 4
    trained = os.path.join(args.work_dir, "trained.bin")
    result = run(args.mpiexec + ["-np", "4", args.trainer] + MODEL +
                 ["--steps", "3", "--batch", "2", "--pp", "2", "--tp", "2", "--micro-batches", "2",
                  "--checkpoint-out", trained])
    if failed("trained checkpoint writer", result):
        return 1
    logs = [os.path.join(args.work_dir, f"resume_{label}.jsonl") for label in ("reference", "pipeline")]
    flags = ["--threads", "1", "--seq-len", "32", "--lr", "3e-3", "--steps", str(steps), "--batch", "4",
             "--init-from", trained]
    results = [
        run([args.trainer] + flags + ["--log-jsonl", logs[0]]),
        run(args.mpiexec + ["-np", "2", args.trainer] + flags + ["--pp", "2", "--schedule", "zb-h1",
                                                                  "--micro-batches", "4", "--log-jsonl", logs[1]]),
    ]
    if any(failed("resume", r) for r in results):
        return 1
    return compare_logs(read_log(logs[0]), read_log(logs[1]), steps, "pipeline")


def check_sample(args):
    # Sampling from the gathered model on rank 0 gives what one process samples from the same weights.
    flags = MODEL + ["--steps", "2", "--batch", "4", "--sample", "40", "--seed", "7"]
    single = run([args.trainer] + flags)
    pipelined = run(args.mpiexec + ["-np", "4", args.trainer] + flags + ["--pp", "4", "--micro-batches", "4"])
    if failed("single", single) or failed("pipelined", pipelined):
        return 1
    def sample(output):
        return output.split("--- sample", 1)[1] if "--- sample" in output else None
    want, got = sample(single.stdout), sample(pipelined.stdout)
    print(f"single:{want!r}\npipelined:{got!r}")
    return 0 if want is not None and want == got else 1


def check_bad_layout(args, name):
    ranks, flags, expected = BAD_LAYOUTS[name]
    return check_usage_error(args.mpiexec + ["-np", str(ranks), args.trainer] + MODEL + ["--steps", "1"] + flags,
                             expected)


def main():
    args = parse_args()
    if args.case in CASES:
        return check_parity(args, args.case)
    if args.case == "trace":
        return check_trace(args)
    if args.case == "checkpoint":
        return check_checkpoint(args)
    if args.case == "sample":
        return check_sample(args)
    if args.case in BAD_LAYOUTS:
        return check_bad_layout(args, args.case)
    print(f"unknown case {args.case}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
