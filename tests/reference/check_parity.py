#!/usr/bin/env python3
"""Parity check: Meridian's train_gpt2 against the independent PyTorch reference (gpt2_torch.py).

Makes fixtures (a random GPT-2 llm.c checkpoint and a token shard), runs the reference and the
trainer with identical flags, and compares their JSONL logs step by step:
  - step-0 loss within --tol-loss0 relative (default 1e-5),
  - every step's loss within --tol-loss relative (default 1e-4),
  - every step's grad_norm within --tol-grad-norm relative (default 1e-3),
  - every step's lr within --tol-lr relative (default 1e-6; the trainer parses --lr as float32),
  - the trained weights (both sides write --checkpoint-out): for every tensor, the distance between
    the two results relative to how far training moved it, ||w_m - w_r|| / ||w_r - w_0||, within
    --tol-weights (default 1e-3; float32 rounding alone gives ~3e-5 on the small model). The loss
    alone misses some wrong updates (weight decay on biases and LayerNorm weights, no weight
    decay at all, a wrong --eps: each moves the 10-step loss by less than 1e-4); the weights do not.
    The key third of qkvb is shown but not enforced: its gradient is zero in exact arithmetic.
Two configurations: "clip" (K = 1, --grad-clip 1.0) and "accum" (--grad-accum 2, no clipping).

    /usr/bin/python3 tests/reference/check_parity.py --trainer build/bin/train_gpt2 \\
        --work-dir build/parity
    /usr/bin/python3 tests/reference/check_parity.py --trainer build/bin/train_gpt2 \\
        --work-dir build/parity-124m --model-preset gpt2-124m

Exit status: 0 all configurations pass, 1 a mismatch or a failed run (the table shows where),
77 torch cannot be imported by this interpreter (CTest's SKIP_RETURN_CODE). The per-step table is
printed in every case.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

SKIP = 77

PRESETS = {
    # A small GPT-2 whose vocabulary is deliberately not a multiple of 128 (padded rows matter).
    "small": dict(layers=2, heads=4, channels=64, vocab=1000, padded_vocab=1024, max_seq_len=64,
                  tokens=20000, batch=4, seq_len=32),
    # The real GPT-2 124M shape (llm.c's gpt2_124M.bin), random weights: a manual run.
    "gpt2-124m": dict(layers=12, heads=12, channels=768, vocab=50257, padded_vocab=50304,
                      max_seq_len=1024, tokens=40000, batch=4, seq_len=64),
}

CONFIGS = {
    "clip": dict(grad_accum=1, clip=True),     # K = 1, global-norm clipping at --grad-clip
    "accum": dict(grad_accum=2, clip=False),   # K = 2, no clipping
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trainer", required=True, help="path to Meridian's train_gpt2")
    p.add_argument("--work-dir", required=True, help="fixtures, logs and JSONL go here")
    p.add_argument("--model-preset", default="small", choices=sorted(PRESETS),
                   help="fixture shape and B, T (explicit flags below override it)")
    shape = p.add_argument_group("fixture shape (default: from --model-preset)")
    for name in ("layers", "heads", "channels", "vocab", "padded-vocab", "max-seq-len", "tokens",
                 "batch", "seq-len"):
        shape.add_argument(f"--{name}", type=int, default=None)
    p.add_argument("--fixture-seed", type=int, default=1234, help="seed of weights and tokens")
    run = p.add_argument_group("training flags passed identically to both")
    run.add_argument("--steps", type=int, default=10)
    run.add_argument("--lr", type=float, default=1e-3)
    run.add_argument("--warmup", type=int, default=3)
    run.add_argument("--lr-schedule", default="cosine", choices=["constant", "cosine"])
    run.add_argument("--lr-min-frac", type=float, default=0.0)
    run.add_argument("--weight-decay", type=float, default=0.1)
    run.add_argument("--grad-clip", type=float, default=1.0, help="used by the 'clip' config")
    run.add_argument("--beta1", type=float, default=0.9)
    run.add_argument("--beta2", type=float, default=0.95)
    run.add_argument("--eps", type=float, default=1e-8)
    run.add_argument("--threads", type=int, default=2)
    run.add_argument("--seed", type=int, default=0)
    tol = p.add_argument_group("tolerances (relative)")
    tol.add_argument("--tol-loss0", type=float, default=1e-5)
    tol.add_argument("--tol-loss", type=float, default=1e-4)
    tol.add_argument("--tol-grad-norm", type=float, default=1e-3)
    tol.add_argument("--tol-lr", type=float, default=1e-6)
    tol.add_argument("--tol-weights", type=float, default=1e-3)
    p.add_argument("--no-compare-weights", dest="compare_weights", action="store_false",
                   help="skip the trained-weights comparison (and --checkpoint-out)")
    p.add_argument("--configs", default="clip,accum",
                   help=f"comma-separated, from {','.join(CONFIGS)}")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    a = p.parse_args(argv)
    preset = PRESETS[a.model_preset]
    for key, value in preset.items():
        if getattr(a, key) is None:
            setattr(a, key, value)
    a.configs = [c.strip() for c in a.configs.split(",") if c.strip()]
    for c in a.configs:
        if c not in CONFIGS:
            p.error(f"unknown config '{c}' (from {', '.join(CONFIGS)})")
    return a


def make_fixtures(a, llmc_files):
    """Writes model.bin and tokens.bin into the work dir, reusing them when the spec is unchanged."""
    spec = dict(V=a.vocab, Vp=a.padded_vocab, maxT=a.max_seq_len, L=a.layers, NH=a.heads,
                C=a.channels, tokens=a.tokens, seed=a.fixture_seed, kind="bigram", version=1)
    model = os.path.join(a.work_dir, "model.bin")
    data = os.path.join(a.work_dir, "tokens.bin")
    stamp = os.path.join(a.work_dir, "fixtures.json")
    try:
        with open(stamp) as f:
            if json.load(f) == spec and os.path.exists(model) and os.path.exists(data):
                return model, data, "reused"
    except (OSError, ValueError):
        pass
    t0 = time.perf_counter()
    header, tensors = llmc_files.make_random_gpt2(a.vocab, a.padded_vocab, a.max_seq_len,
                                                  a.layers, a.heads, a.channels,
                                                  seed=a.fixture_seed)
    llmc_files.write_checkpoint(model, header, tensors)
    del tensors
    tokens = llmc_files.make_random_tokens(a.tokens, a.vocab, seed=a.fixture_seed + 1,
                                           kind="bigram")
    llmc_files.write_shard(data, tokens)
    with open(stamp, "w") as f:
        json.dump(spec, f)
    return model, data, f"made in {time.perf_counter() - t0:.1f} s"


def common_flags(a, model, data, config):
    cfg = CONFIGS[config]
    return ["--init-from", model, "--data", data,
            "--batch", str(a.batch), "--seq-len", str(a.seq_len),
            "--grad-accum", str(cfg["grad_accum"]), "--steps", str(a.steps),
            "--optimizer", "adamw", "--lr", repr(a.lr), "--warmup", str(a.warmup),
            "--lr-schedule", a.lr_schedule, "--lr-min-frac", repr(a.lr_min_frac),
            "--weight-decay", repr(a.weight_decay),
            "--grad-clip", repr(a.grad_clip if cfg["clip"] else 0.0),
            "--beta1", repr(a.beta1), "--beta2", repr(a.beta2), "--eps", repr(a.eps),
            "--threads", str(a.threads), "--seed", str(a.seed)]


def run_one(name, cmd, jsonl, log_path, threads, timeout):
    """Runs one side; returns (records or None, message)."""
    if os.path.exists(jsonl):
        os.unlink(jsonl)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    try:
        with open(log_path, "w") as log:
            log.write("$ " + " ".join(cmd) + "\n")
            log.flush()
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        return None, f"{name}: timed out after {timeout:.0f} s (log: {log_path})"
    except OSError as e:
        return None, f"{name}: could not start: {e}"
    seconds = time.perf_counter() - t0
    if rc != 0:
        with open(log_path) as f:
            tail = "".join(f.readlines()[-15:])
        return None, f"{name}: exit status {rc} (log: {log_path})\n{tail}"
    records = {}
    try:
        with open(jsonl) as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    records[int(rec["step"])] = rec
    except (OSError, ValueError, KeyError) as e:
        return None, f"{name}: unreadable JSONL {jsonl}: {e}"
    return records, f"{name}: {seconds:.1f} s"


def rel_err(value, ref):
    if value is None or ref is None:
        return math.inf
    if not (math.isfinite(value) and math.isfinite(ref)):
        return math.inf
    return abs(value - ref) / max(abs(ref), 1e-30)


def compare(a, ref, mer):
    """Returns (ok, table lines, worst relative error per field). '*' marks a value beyond tolerance."""
    # field, column width, number format, tolerance for step s
    columns = (("loss", 13, ".6f", lambda s: min(a.tol_loss0, a.tol_loss) if s == 0 else a.tol_loss),
               ("grad_norm", 13, ".6f", lambda s: a.tol_grad_norm),
               ("lr", 11, ".4e", lambda s: a.tol_lr))
    head = " | ".join([f"{'step':>4}"] + [f"{f + ' ref':>{w}} {f + ' meridian':>{w + 4}} {'rel':>8}"
                                          for f, w, _, _ in columns])
    lines = [head, "-" * len(head)]
    ok = True
    worst = {f: 0.0 for f, _, _, _ in columns}
    for step in range(a.steps):
        r, m = ref.get(step), mer.get(step)
        cells = [f"{step:>4}"]
        for field, width, fmt, tol in columns:
            rv = None if r is None else float(r.get(field, math.nan))
            mv = None if m is None else float(m.get(field, math.nan))
            e = rel_err(mv, rv)
            bad = not e <= tol(step)
            ok = ok and not bad
            worst[field] = max(worst[field], e)
            rs = format(rv, f">{width}{fmt}") if rv is not None else f"{'missing':>{width}}"
            ms = format(mv, f">{width + 4}{fmt}") if mv is not None else f"{'missing':>{width + 4}}"
            cells.append(f"{rs} {ms} {e:>7.1e}{'*' if bad else ' '}")
        lines.append(" | ".join(cells))
    extra = sorted(set(mer) - set(range(a.steps)))
    if extra:
        lines.append(f"(meridian logged unexpected steps {extra[:5]})")
        ok = False
    return ok, lines, worst


def compare_weights(a, llmc_files, model, ref_path, mer_path):
    """Per tensor: ||w_m - w_r|| / ||w_r - w_0||. Returns (ok, table lines, worst)."""
    import numpy as np

    for side, path in (("reference", ref_path), ("meridian", mer_path)):
        if not os.path.exists(path):
            return False, [f"weights: {side} wrote no checkpoint at {path} (--checkpoint-out); "
                           f"--no-compare-weights skips this check"], math.inf
    try:
        h0, w0 = llmc_files.read_checkpoint(model)
        hr, wr = llmc_files.read_checkpoint(ref_path)
        hm, wm = llmc_files.read_checkpoint(mer_path)
    except ValueError as e:
        return False, [f"weights: {e}"], math.inf
    if not h0 == hr == hm:
        return False, [f"weights: headers differ: initial {h0}, reference {hr}, meridian {hm}"], \
            math.inf
    C = h0["channels"]
    lines = [f"{'tensor':>9} | {'moved (ref)':>11} {'|w_m - w_r|':>11} {'rel':>9}",
             "-" * 46]
    ok, worst = True, 0.0
    for name in w0:
        r = wr[name].astype(np.float64)
        m = wm[name].astype(np.float64)
        z = w0[name].astype(np.float64)
        parts = [(name, r, m, z, True)]
        if name == "qkvb":
            # The key bias has zero gradient in exact arithmetic (softmax is shift-invariant), so
            # Adam turns rounding noise into its updates: reported, not enforced.
            parts = [("qkvb q,v", np.concatenate([r[:, :C], r[:, 2 * C:]], 1),
                      np.concatenate([m[:, :C], m[:, 2 * C:]], 1),
                      np.concatenate([z[:, :C], z[:, 2 * C:]], 1), True),
                     ("qkvb k", r[:, C:2 * C], m[:, C:2 * C], z[:, C:2 * C], False)]
        for label, r_, m_, z_, enforced in parts:
            moved = float(np.linalg.norm(r_ - z_))
            diff = float(np.linalg.norm(m_ - r_))
            e = diff / moved if moved > 0 else (0.0 if diff == 0 else math.inf)
            bad = enforced and not e <= a.tol_weights
            ok = ok and not bad
            if enforced:
                worst = max(worst, e)
            mark = "*" if bad else ("" if enforced else " (info)")
            lines.append(f"{label:>9} | {moved:>11.4e} {diff:>11.4e} {e:>9.2e}{mark}")
    return ok, lines, worst


def median_ms(records):
    values = [float(r["ms"]) for r in records.values() if "ms" in r]
    return statistics.median(values[1:] if len(values) > 1 else values) if values else math.nan


def main(argv=None):
    a = parse_args(argv)
    try:
        import torch  # noqa: F401  (the reference runs under this same interpreter)
        import numpy  # noqa: F401
    except ImportError as e:
        print(f"check_parity.py: SKIP: {sys.executable} cannot import {e.name} "
              f"(the PyTorch reference needs torch and numpy)")
        return SKIP
    import llmc_files

    trainer = os.path.abspath(a.trainer)
    if not os.access(trainer, os.X_OK):
        print(f"check_parity.py: FAIL: trainer {trainer} is not an executable file")
        return 1
    os.makedirs(a.work_dir, exist_ok=True)
    a.work_dir = os.path.abspath(a.work_dir)
    model, data, how = make_fixtures(a, llmc_files)
    print(f"fixtures ({how}): GPT-2 L={a.layers} NH={a.heads} C={a.channels} V={a.vocab} "
          f"Vp={a.padded_vocab} maxT={a.max_seq_len}; {a.tokens} tokens; B={a.batch} T={a.seq_len}; "
          f"{a.steps} steps, lr {a.lr} warmup {a.warmup} {a.lr_schedule}, wd {a.weight_decay}")
    print(f"tolerances (relative): step-0 loss {a.tol_loss0:g}, loss {a.tol_loss:g}, "
          f"grad_norm {a.tol_grad_norm:g}, lr {a.tol_lr:g}, "
          + (f"weights {a.tol_weights:g}" if a.compare_weights else "weights not compared"))
    reference = os.path.join(HERE, "gpt2_torch.py")

    results = []
    for config in a.configs:
        flags = common_flags(a, model, data, config)
        jr = os.path.join(a.work_dir, f"{config}.reference.jsonl")
        jm = os.path.join(a.work_dir, f"{config}.meridian.jsonl")
        cr = os.path.join(a.work_dir, f"{config}.reference.bin")
        cm = os.path.join(a.work_dir, f"{config}.meridian.bin")
        ref_out, mer_out = ["--log-jsonl", jr], ["--log-jsonl", jm]
        if a.compare_weights:
            for path in (cr, cm):
                if os.path.exists(path):
                    os.unlink(path)
            ref_out += ["--checkpoint-out", cr]
            mer_out += ["--checkpoint-out", cm]
        ref_cmd = [sys.executable, reference] + flags + ref_out
        mer_cmd = [trainer] + flags + mer_out
        print(f"\n=== config '{config}': grad-accum {CONFIGS[config]['grad_accum']}, grad-clip "
              f"{a.grad_clip if CONFIGS[config]['clip'] else 0.0}")
        print("flags: " + " ".join(flags[4:]))
        ref, msg_r = run_one("reference", ref_cmd, jr, jr[:-6] + ".log", a.threads, a.timeout)
        print(msg_r)
        mer, msg_m = run_one("meridian", mer_cmd, jm, jm[:-6] + ".log", a.threads, a.timeout)
        print(msg_m)
        if ref is None or mer is None:
            if ref is not None or mer is not None:
                ok, lines, _ = compare(a, ref or {}, mer or {})
                print("\n".join(lines))
            results.append((config, False, "run failed"))
            continue
        ok, lines, worst = compare(a, ref, mer)
        print("\n".join(lines))
        summary = (f"max rel err: loss {worst['loss']:.2e}, grad_norm {worst['grad_norm']:.2e}, "
                   f"lr {worst['lr']:.2e}; median ms/step: reference {median_ms(ref):.1f}, "
                   f"meridian {median_ms(mer):.1f}")
        if a.compare_weights:
            w_ok, w_lines, w_worst = compare_weights(a, llmc_files, model, cr, cm)
            print("\n".join(w_lines))
            ok = ok and w_ok
            summary = summary.replace("; median", f", weights {w_worst:.2e}; median")
        print(summary)
        print(f"config '{config}': {'PASS' if ok else 'FAIL (* = beyond tolerance)'}")
        results.append((config, ok, summary))

    failed = [c for c, ok, _ in results if not ok]
    print(f"\nparity: {'PASS' if not failed else 'FAIL'} "
          f"({len(results) - len(failed)}/{len(results)} configurations pass"
          + (f"; failed: {', '.join(failed)}" if failed else "") + f"; work dir {a.work_dir})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
