"""train_gpt2 --device cuda against --device cpu: the same small run (gpt-mini shape, built-in corpus,
20 AdamW steps) on one GPU and on the CPU; the loss curves must agree.

Cases:
  matches_cpu       f32: step 0 to 1e-4 absolute, every step to 1e-3 (fp32 reordering inside the
                    kernels, compounded through AdamW).
  bf16_matches_cpu  --dtype bf16 on both (the cpu's bf16 path is the reference): every step to 1e-2.
  dp2_matches_one_gpu
                    two ranks on two GPUs, gradients reduced over NCCL, against one GPU on the same
                    global batch (relative 1e-4 on loss and norm: fp32, only the reduction order differs).
  tp2_matches_one_gpu, tp2_sp_matches_one_gpu
                    --tp 2 (and with --sequence-parallel) on two GPUs, the maps and the vocabulary-parallel
                    loss over NCCL, against one GPU on the same batch (relative 1e-4, fp32).
  pp2_1f1b_matches_one_gpu, pp2_zbh1_matches_one_gpu
                    --pp 2 on two GPUs (4 micro-batches, 1F1B; ZB-H1 with its deferred weight gradients),
                    activations and gradients over NCCL stage links, the tied embedding's gradients
                    summed over NCCL, against one GPU on the same batch (relative 1e-4, fp32).
  bf16_dp2_matches_one_gpu, bf16_tp2_sp_matches_one_gpu, bf16_pp2_1f1b_matches_one_gpu
                    the same layouts in --dtype bf16 against one GPU in bf16: relative 1e-3 on loss and
                    norm, 5e-3 on tp's norm (the bounds of trainer_mixed_precision.py, which says why: the
                    layouts' last-bit differences in the sums, amplified by bf16 rounding).
  dp2_zero1_matches_one_gpu, dp2_zero2_accum2_matches_one_gpu
                    ZeRO on two GPUs: gradients reduce-scattered and parameters all-gathered over NCCL
                    (stage 2 with two micro-steps of one sequence), against one GPU (relative 1e-4, fp32).
  dp2_tp2_matches_one_gpu, dp2_pp2_matches_one_gpu, tp2_pp2_sp_matches_one_gpu
                    four ranks on four GPUs, two layouts composed on one process grid (NCCL groups for
                    each axis), against one GPU (relative 1e-4, fp32).
  checkpoints_from_gpus
                    --steps 0 --checkpoint-out from one GPU, from --tp 2 (shards gathered over NCCL) and
                    from --pp 2 on two GPUs: each file byte-identical to the cpu's (the initial weights
                    go to the GPUs and come back unchanged); --sample 8 runs on the tp2 model's GPUs.
  pp2_trace_on_gpus --pp 2 --trace on two GPUs: every rank's Chrome trace, timed on its compute stream (every
                    category, no span running backwards, one forward per micro-batch and step), and the
                    bubble printed for the compute streams.
Exits 77 (ctest: skipped) when the trainer says no GPU (or too few GPUs) is usable or the build has no
CUDA backend.
"""
import os
import sys

import trainer_testing as tt

SKIP = 77
# The launcher's device binding fails with this prefix when there is no driver, no GPU or no CUDA
# backend (launcher/device_binding.cpp); training errors look different.
NO_GPU = ("--device cuda needs cuda:",)

# One host thread per rank: the host work here is small, and under the race check (docs/cuda.md) a second
# OpenMP thread would be reported racing with the first, libgomp's barriers being invisible to it.
COMMON = ["--model", "gpt-mini", "--layers", "2", "--channels", "64", "--heads", "2", "--seq-len", "32",
          "--steps", "20", "--lr", "1e-3", "--threads", "1"]


def no_gpu(result):
    return result.returncode != 0 and any(reason in result.stderr + result.stdout for reason in NO_GPU)


def compare_on_gpu(args, dtype="f32", first_bound=1e-4, bound=1e-3):
    common = COMMON + ["--batch", "4", "--dtype", dtype]
    cpu_log = os.path.join(args.work_dir, "cpu.jsonl")
    gpu_log = os.path.join(args.work_dir, "cuda.jsonl")
    gpu = tt.run([args.trainer] + common + ["--device", "cuda", "--log-jsonl", gpu_log])
    if no_gpu(gpu):
        print("skipped: no usable GPU\n" + gpu.stderr)
        return SKIP
    if tt.failed("--device cuda", gpu):
        return 1
    cpu = tt.run([args.trainer] + common + ["--device", "cpu", "--log-jsonl", cpu_log])
    if tt.failed("--device cpu", cpu):
        return 1
    want, got = tt.read_log(cpu_log), tt.read_log(gpu_log)
    if len(want) != 20 or len(got) != 20:
        print(f"expected 20 steps, got {len(want)} (cpu) and {len(got)} (cuda)")
        return 1
    failures = 0
    for a, b in zip(want, got):
        error = abs(a["loss"] - b["loss"])
        bad = error > (first_bound if a["step"] == 0 else bound)
        failures += bad
        print(f"{a['step']:>4} cpu {a['loss']:.7f} cuda {b['loss']:.7f} diff {error:.2e}" + ("  FAIL" if bad else ""))
    return 1 if failures else 0


def compare_gpus(args, label, layout, batch, ranks=2, dtype="f32", bounds=(1e-4, 1e-4)):
    """`ranks` ranks on as many GPUs with `layout` flags and per-replica --batch `batch` against one GPU
    with --batch 4 (the same global batch), both in `dtype`: relative `bounds` on loss and norm (in fp32
    1e-4: only the order of the sums differs)."""
    common = COMMON + ["--device", "cuda", "--dtype", dtype]
    one_log = os.path.join(args.work_dir, "one_gpu.jsonl")
    many_log = os.path.join(args.work_dir, f"{ranks}_gpus.jsonl")
    many = tt.run(args.mpiexec + ["-np", str(ranks), args.trainer] + common + layout +
                  ["--batch", str(batch), "--log-jsonl", many_log])
    if no_gpu(many):
        print(f"skipped: fewer than {ranks} usable GPUs\n" + many.stderr)
        return SKIP
    one = tt.run([args.trainer] + common + ["--batch", "4", "--log-jsonl", one_log])
    if tt.failed(f"{label} on {ranks} GPUs", many) or tt.failed("one GPU", one):
        return 1
    if "over NCCL" not in many.stdout:  # the job's summary line names its collectives' backend
        print(f"{label}: the job did not say it runs over NCCL:\n{many.stdout}")
        return 1
    return tt.compare_logs(tt.read_log(one_log), tt.read_log(many_log), 20, label + " cuda", *bounds)


def checkpoints_from_gpus(args):
    def path(name):
        return os.path.join(args.work_dir, name + ".bin")
    zero = COMMON + ["--batch", "4", "--steps", "0"]
    one = tt.run([args.trainer] + zero + ["--device", "cuda", "--checkpoint-out", path("one_gpu")])
    if no_gpu(one):
        print("skipped: no usable GPU\n" + one.stderr)
        return SKIP
    cpu = tt.run([args.trainer] + zero + ["--device", "cpu", "--checkpoint-out", path("cpu")])
    if tt.failed("one GPU", one) or tt.failed("cpu", cpu):
        return 1
    files = ["one_gpu"]
    tp2 = tt.run(args.mpiexec + ["-np", "2", args.trainer] + zero +
                 ["--device", "cuda", "--tp", "2", "--checkpoint-out", path("tp2"), "--sample", "8"])
    if no_gpu(tp2):
        print("two GPUs are not usable: only the one-GPU checkpoint is checked\n" + tp2.stderr)
    else:
        pp2 = tt.run(args.mpiexec + ["-np", "2", args.trainer] + zero +
                     ["--device", "cuda", "--pp", "2", "--checkpoint-out", path("pp2")])
        if tt.failed("--tp 2", tp2) or tt.failed("--pp 2", pp2):
            return 1
        if "--- sample (8 tokens" not in tp2.stdout:
            print("--tp 2 on GPUs printed no sample of 8 tokens:\n" + tp2.stdout)
            return 1
        files += ["tp2", "pp2"]
    with open(path("cpu"), "rb") as f:
        want = f.read()
    failures = 0
    for name in files:
        with open(path(name), "rb") as f:
            same = f.read() == want
        print(f"{name}.bin {'equals' if same else 'DIFFERS FROM'} cpu.bin")
        failures += not same
    return 1 if failures else 0


def trace_on_gpus(args, steps=3, micro_batches=4):
    trace = os.path.join(args.work_dir, "timeline.json")
    flags = list(COMMON)
    flags[flags.index("--steps") + 1] = str(steps)
    result = tt.run(args.mpiexec + ["-np", "2", args.trainer] + flags +
                    ["--device", "cuda", "--batch", "4", "--pp", "2", "--micro-batches", str(micro_batches),
                     "--trace", trace])
    if no_gpu(result):
        print("skipped: fewer than 2 usable GPUs\n" + result.stderr)
        return SKIP
    if tt.failed("traced job on GPUs", result):
        return 1
    if "on the compute streams" not in result.stdout:
        print(f"the job printed no bubble for the compute streams:\n{result.stdout}")
        return 1
    return tt.check_trace_files(args.work_dir, 2, steps * micro_batches)


# case: (label, layout flags, per-replica micro-batch, ranks); the one-GPU reference runs --batch 4.
LAYOUTS = {
    "dp2_matches_one_gpu": ("dp2", [], 2, 2),
    "tp2_matches_one_gpu": ("tp2", ["--tp", "2"], 4, 2),
    "tp2_sp_matches_one_gpu": ("tp2 sp", ["--tp", "2", "--sequence-parallel"], 4, 2),
    "pp2_1f1b_matches_one_gpu": ("pp2 1f1b", ["--pp", "2", "--micro-batches", "4"], 4, 2),
    "pp2_zbh1_matches_one_gpu": ("pp2 zb-h1", ["--pp", "2", "--micro-batches", "4", "--schedule", "zb-h1"], 4, 2),
    "dp2_zero1_matches_one_gpu": ("dp2 zero1", ["--zero", "1"], 2, 2),
    "dp2_zero2_accum2_matches_one_gpu": ("dp2 zero2 accum2", ["--zero", "2", "--grad-accum", "2"], 1, 2),
    "dp2_tp2_matches_one_gpu": ("dp2 tp2", ["--dp", "2", "--tp", "2", "--sequence-parallel"], 2, 4),
    "tp2_pp2_sp_matches_one_gpu": ("tp2 pp2 sp", ["--tp", "2", "--pp", "2", "--micro-batches", "4",
                                                  "--sequence-parallel"], 4, 4),
    "dp2_pp2_matches_one_gpu": ("dp2 pp2", ["--dp", "2", "--pp", "2", "--micro-batches", "2"], 2, 4),
}


def main():
    args = tt.parse_args()
    if args.case == "matches_cpu":
        return compare_on_gpu(args)
    if args.case == "bf16_matches_cpu":
        return compare_on_gpu(args, "bf16", 1e-2, 1e-2)
    if args.case in LAYOUTS:
        label, layout, batch, ranks = LAYOUTS[args.case]
        return compare_gpus(args, label, layout, batch, ranks)
    if args.case.startswith("bf16_") and args.case[len("bf16_"):] in LAYOUTS:
        label, layout, batch, ranks = LAYOUTS[args.case[len("bf16_"):]]
        bounds = (1e-3, 5e-3) if "--tp" in layout else (1e-3, 1e-3)
        return compare_gpus(args, "bf16 " + label, layout, batch, ranks, "bf16", bounds)
    if args.case == "checkpoints_from_gpus":
        return checkpoints_from_gpus(args)
    if args.case == "pp2_trace_on_gpus":
        return trace_on_gpus(args)
    print(f"unknown case {args.case}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
