"""What the multi-rank train_gpt2 checks share: running the trainer, reading its JSONL log, comparing
a parallel job's loss curve with one process's, and recognising a usage error that ended every rank.
"""
import argparse
import json
import os
import subprocess
import time

TOLERANCE = 1e-5  # relative, per step, on the loss and the gradient norm


def parse_args():
    """The arguments every driver takes: the trainer, mpiexec and its flags, a work folder, a case."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--trainer", required=True)
    parser.add_argument("--mpiexec", required=True)
    parser.add_argument("--mpiexec-flag", action="append", default=[])
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--case", required=True)
    args = parser.parse_args()
    args.mpiexec = [args.mpiexec] + args.mpiexec_flag
    os.makedirs(args.work_dir, exist_ok=True)
    return args


def read_log(path):
    return [json.loads(line) for line in open(path)]


def run(command):
    print("$ " + " ".join(command), flush=True)
    # Byte-level samples need not be UTF-8.
    return subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=600)


def failed(label, result):
    if result.returncode == 0:
        return False
    print(f"{label} failed with exit {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return True


def compare_logs(want, got, steps, label="parallel", loss_tolerance=TOLERANCE, norm_tolerance=TOLERANCE):
    """0 when both logs have `steps` steps whose losses and gradient norms agree to the relative
    tolerances (TOLERANCE unless a caller states why its layout needs another)."""
    failures = 0
    print(f"{'step':>4} {'reference loss':>16} {label + ' loss':>16} {'rel err':>9} {'norm rel err':>12}"
          f"   (bounds {loss_tolerance:.0e}, {norm_tolerance:.0e})")
    for a, b in zip(want, got):
        loss_error = abs(b["loss"] - a["loss"]) / abs(a["loss"])
        norm_error = abs(b["grad_norm"] - a["grad_norm"]) / abs(a["grad_norm"])
        bad = loss_error > loss_tolerance or norm_error > norm_tolerance
        failures += bad
        print(f"{a['step']:>4} {a['loss']:>16.9f} {b['loss']:>16.9f} {loss_error:>9.2e} {norm_error:>12.2e}"
              + ("  FAIL" if bad else ""))
    if len(want) != steps or len(got) != steps:
        print(f"expected {steps} steps, got {len(want)} and {len(got)}")
        return 1
    return 1 if failures else 0


def check_usage_error(command, expected):
    """0 when `command` (a job under mpiexec) ends within a minute with the launcher's usage-error
    status 2 and every word of `expected` in stderr. Exit 2 means every rank threw the same error and
    confirmed it; a rank that did not would have made the job abort, with another status."""
    start = time.time()
    result = run(command)
    elapsed = time.time() - start
    print(f"exit {result.returncode} after {elapsed:.1f} s; stderr: {result.stderr.strip()}")
    ok = (result.returncode == 2 and all(word in result.stderr for word in expected)
          and "aborting" not in result.stderr and elapsed < 60)
    return 0 if ok else 1


TRACE_CATEGORIES = {"forward", "backward", "send", "recv", "optimizer", "idle"}


def check_trace_files(work_dir, ranks, forwards):
    """0 when every rank wrote its Chrome trace (work_dir/timeline.rank<R>.json, from --trace
    work_dir/timeline.json) with spans of every TRACE_CATEGORIES category, none running backwards,
    and `forwards` forward passes."""
    status = 0
    for rank in range(ranks):
        path = os.path.join(work_dir, f"timeline.rank{rank}.json")
        events = json.load(open(path))["traceEvents"]
        # Complete events ("X") carry a start and a duration, and never run backwards.
        spans = [e for e in events if e.get("ph") == "X"]
        categories = {e.get("cat") for e in spans}
        missing = TRACE_CATEGORIES - categories
        negative = [e for e in spans if e["dur"] < 0]
        count = sum(1 for e in spans if e.get("cat") == "forward")
        print(f"rank {rank}: {len(spans)} spans, categories {sorted(c for c in categories if c)}, "
              f"{count} forward passes")
        if missing or negative or count != forwards:
            print(f"rank {rank}: missing categories {sorted(missing)}, {len(negative)} negative durations, "
                  f"{count} forward passes where {forwards} were run")
            status = 1
    return status
