#!/usr/bin/env python3
"""Times PyTorch's GPT-2 training step on the CPU, for comparison with Meridian's in the same run.

One step is what Meridian's train_gpt2 does: zero grads, forward + backward (fp32), global-norm
clip at 1.0, AdamW (weight decay 0.1 on matrices and embeddings). The model is tests/reference's
gpt2_torch.GPT2 (plain torch ops, explicit causal attention) with random GPT-2-initialised weights
and random tokens from llmc_files; nothing is read from disk or fetched.

    /usr/bin/python3 bench/torch_gpt2_step.py                      # GPT-2 124M, B=4, T=64, 2 threads
    /usr/bin/python3 bench/torch_gpt2_step.py --json -             # plus one JSON line on stdout
    /usr/bin/python3 bench/torch_gpt2_step.py --json out.json --steps 20 --threads 4

Prints one line: model, B, T, threads, median ms/step and tokens/s over --steps timed steps after
--warmup-steps untimed ones. Exit status 77 when torch cannot be imported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "reference"))
if __name__ == "__main__":
    # Before torch loads: OpenBLAS sizes its thread pool from the environment, not from
    # torch.set_num_threads (see gpt2_torch._blas_threads_from_argv). Default --threads is 2.
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = "2"
    for _i, _arg in enumerate(sys.argv):
        if _arg == "--threads" and _i + 1 < len(sys.argv) and sys.argv[_i + 1].isdigit():
            os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = sys.argv[_i + 1]
        elif _arg.startswith("--threads=") and _arg[10:].isdigit():
            os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = _arg[10:]
import gpt2_torch  # noqa: E402  (exits 77 below if torch or numpy is missing)

SHAPES = {
    "gpt2-124m": dict(V=50257, Vp=50304, maxT=1024, L=12, NH=12, C=768),
    "gpt-mini": dict(V=50257, Vp=50304, maxT=1024, L=6, NH=6, C=384),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="gpt2-124m", choices=sorted(SHAPES))
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup-steps", type=int, default=2, help="untimed steps first")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="also write the result as JSON ('-': stdout)")
    a = p.parse_args(argv)
    gpt2_torch.require_torch()
    torch = gpt2_torch.torch
    llmc_files = gpt2_torch.llmc_files
    if a.steps < 1 or a.warmup_steps < 0 or a.batch < 1 or a.seq_len < 1 or a.threads < 1:
        p.error("need --steps, --batch, --seq-len, --threads >= 1 and --warmup-steps >= 0")

    gpt2_torch.configure_torch(a.threads)
    s = SHAPES[a.model]
    header, tensors = llmc_files.make_random_gpt2(s["V"], s["Vp"], s["maxT"], s["L"], s["NH"],
                                                  s["C"], seed=a.seed)
    model = gpt2_torch.GPT2(header, tensors)
    del tensors
    total = a.warmup_steps + a.steps
    tokens = llmc_files.make_random_tokens(total * a.batch * a.seq_len + 1, s["V"], seed=a.seed + 1)
    windows = gpt2_torch.TokenWindows(tokens, a.batch, a.seq_len, 1)
    params = list(model.parameters())
    optimizer = gpt2_torch.make_optimizer(model, a.lr, 0.9, 0.95, 1e-8, 0.1)

    times = []
    for step in range(total):
        t0 = time.perf_counter()
        loss = gpt2_torch.forward_backward(model, windows, step)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if step >= a.warmup_steps:
            times.append(time.perf_counter() - t0)
    ms = statistics.median(times) * 1e3
    tokens_per_s = a.batch * a.seq_len / (ms / 1e3)
    result = dict(framework="pytorch", torch_version=torch.__version__, model=a.model,
                  parameters=llmc_files.parameter_count(header), batch=a.batch,
                  seq_len=a.seq_len, threads=a.threads, warmup_steps=a.warmup_steps,
                  steps=a.steps, median_ms=ms, min_ms=min(times) * 1e3, max_ms=max(times) * 1e3,
                  tokens_per_s=tokens_per_s, last_loss=loss)
    print(f"pytorch {torch.__version__} {a.model} B={a.batch} T={a.seq_len} threads={a.threads}: "
          f"{ms:.1f} ms/step (median of {a.steps}; min {result['min_ms']:.1f}, max "
          f"{result['max_ms']:.1f}), {tokens_per_s:.0f} tokens/s")
    if a.json == "-":
        print(json.dumps(result))
    elif a.json:
        with open(a.json, "w") as f:
            json.dump(result, f)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
