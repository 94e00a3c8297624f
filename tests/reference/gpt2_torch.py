#!/usr/bin/env python3
"""Independent PyTorch reference of Meridian's GPT-2 trainer (build/bin/train_gpt2).

Same flags, same data rule, same optimizer and schedule, same JSONL (one object per step with
step, loss, lr, grad_norm, ms, tokens_per_s, mfu), all in float32 with plain torch ops, so that
tests/reference/check_parity.py can compare the two runs step by step.

    /usr/bin/python3 tests/reference/gpt2_torch.py --init-from model.bin --data tokens.bin \\
        --batch 4 --seq-len 32 --steps 10 --lr 1e-3 --warmup 3 --lr-schedule cosine \\
        --weight-decay 0.1 --grad-clip 1.0 --threads 2 --log-jsonl ref.jsonl

    /usr/bin/python3 tests/reference/gpt2_torch.py --self-check   # assertions on the reference itself

Semantics (README.md in this folder has the full list): GPT-2 from an llm.c float32 checkpoint,
pre-norm blocks, causal attention scaled by 1/sqrt(hs), tanh GELU, tied wte whose padded rows
(V <= j < Vp) take no part in the softmax; step s reads window (s mod W) of G = K*B sequences;
AdamW with weight decay on parameters of ndim >= 2 only; linear warmup then constant or cosine;
global-norm clipping with torch.nn.utils.clip_grad_norm_ semantics (the norm summed in float64).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def _blas_threads_from_argv(argv) -> None:
    """OpenBLAS (Debian's torch links it) sizes its thread pool when it is loaded, from
    OPENBLAS_NUM_THREADS, and torch.set_num_threads does not reach it: so --threads N must be in
    the environment before torch is imported, or a 2-thread run still multiplies on every core."""
    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--threads=") else (
            argv[i + 1] if arg == "--threads" and i + 1 < len(argv) else None)
        if value is not None and value.isdigit() and int(value) > 0:
            os.environ["OPENBLAS_NUM_THREADS"] = value
            os.environ["OMP_NUM_THREADS"] = value


if __name__ == "__main__":
    _blas_threads_from_argv(sys.argv[1:])

try:
    import numpy as np

    import llmc_files
    import torch
    import torch.nn.functional as F
except ImportError as _missing:  # reported as a skip (exit 77), as check_parity.py does
    torch = None
    F = None
    _MISSING = _missing.name

SKIP_EXIT_CODE = 77
LAYERNORM_EPS = 1e-5
BLOCK_TENSORS = ("ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb", "ln2w", "ln2b", "fcw",
                 "fcb", "fcprojw", "fcprojb")


def require_torch() -> None:
    if torch is None:
        print(f"gpt2_torch.py: SKIP: this interpreter ({sys.executable}) cannot import "
              f"{_MISSING} (the reference needs numpy and torch)", file=sys.stderr)
        sys.exit(SKIP_EXIT_CODE)


# ---------------------------------------------------------------- model


def _parameter(array: np.ndarray, dtype) -> "torch.nn.Parameter":
    return torch.nn.Parameter(torch.tensor(np.ascontiguousarray(array), dtype=dtype))


if torch is not None:

    class Block(torch.nn.Module):
        """One pre-norm transformer block; its parameters carry llm.c's names."""

        def __init__(self, tensors: Dict[str, np.ndarray], layer: int, num_heads: int, dtype):
            super().__init__()
            self.num_heads = num_heads
            for name in BLOCK_TENSORS:
                setattr(self, name, _parameter(tensors[name][layer], dtype))

        def forward(self, x):
            B, T, C = x.shape
            nh = self.num_heads
            hs = C // nh
            # attention: qkv = ln1(x) Wqkv^T + b, split q | k | v; head h owns channels h*hs..h*hs+hs-1
            h = F.layer_norm(x, (C,), self.ln1w, self.ln1b, LAYERNORM_EPS)
            qkv = F.linear(h, self.qkvw, self.qkvb)
            q, k, v = qkv.split(C, dim=2)
            q = q.reshape(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
            k = k.reshape(B, T, nh, hs).transpose(1, 2)
            v = v.reshape(B, T, nh, hs).transpose(1, 2)
            scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, nh, T, T)
            future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
            att = torch.softmax(scores, dim=-1)
            y = torch.matmul(att, v).transpose(1, 2).reshape(B, T, C)
            x = x + F.linear(y, self.attprojw, self.attprojb)
            # MLP: fc (4C) -> GELU (tanh form) -> fcproj
            h = F.layer_norm(x, (C,), self.ln2w, self.ln2b, LAYERNORM_EPS)
            h = F.gelu(F.linear(h, self.fcw, self.fcb), approximate="tanh")
            return x + F.linear(h, self.fcprojw, self.fcprojb)

    class GPT2(torch.nn.Module):
        """GPT-2 built from an llm.c checkpoint's tensors (header dict + name -> ndarray)."""

        def __init__(self, header: Dict[str, int], tensors: Dict[str, np.ndarray],
                     dtype=torch.float32):
            super().__init__()
            self.header = dict(header)
            self.V = header["vocab_size"]
            self.wte = _parameter(tensors["wte"], dtype)  # (Vp, C), tied with the output layer
            self.wpe = _parameter(tensors["wpe"], dtype)  # (maxT, C)
            self.blocks = torch.nn.ModuleList(
                Block(tensors, l, header["num_heads"], dtype) for l in range(header["num_layers"]))
            self.lnfw = _parameter(tensors["lnfw"], dtype)
            self.lnfb = _parameter(tensors["lnfb"], dtype)

        def forward(self, idx, targets=None):
            """idx, targets: (B, T) int64. Returns logits (B, T, Vp) or the mean cross-entropy over
            the first V logits of every position."""
            B, T = idx.shape
            if T > self.wpe.shape[0]:
                raise ValueError(f"sequence length {T} exceeds the model's {self.wpe.shape[0]}")
            pos = torch.arange(T, device=idx.device)
            x = F.embedding(idx, self.wte) + F.embedding(pos, self.wpe)
            for block in self.blocks:
                x = block(x)
            x = F.layer_norm(x, (x.shape[-1],), self.lnfw, self.lnfb, LAYERNORM_EPS)
            logits = F.linear(x, self.wte)  # over all Vp rows
            if targets is None:
                return logits
            V = self.V  # the padded rows V..Vp-1 take no part in the softmax
            return F.cross_entropy(logits[..., :V].reshape(-1, V), targets.reshape(-1))

        def to_llmc(self) -> Dict[str, np.ndarray]:
            """The current weights as llm.c checkpoint tensors (float32)."""
            out = {"wte": self.wte, "wpe": self.wpe, "lnfw": self.lnfw, "lnfb": self.lnfb}
            out = {k: v.detach().float().numpy().copy() for k, v in out.items()}
            for name in BLOCK_TENSORS:
                out[name] = np.stack(
                    [getattr(b, name).detach().float().numpy() for b in self.blocks])
            return out


# ---------------------------------------------------------------- data


class TokenWindows:
    """ARCHITECTURE.md's data rule for one process (D = 1).

    Step s covers G = K*B sequences from the window that starts at token (s mod W)*G*T, with
    W = floor((N - 1) / (G*T)). Sequence j of the window is tokens [start + j*T, start + j*T + T + 1)
    (inputs the first T, targets the last T); micro-step i takes sequences i*B .. i*B + B - 1."""

    def __init__(self, tokens: np.ndarray, B: int, T: int, K: int):
        if min(B, T, K) < 1:
            raise ValueError(f"B, T, K must be positive, got {B}, {T}, {K}")
        self.tokens = np.asarray(tokens)
        self.B, self.T, self.K = B, T, K
        self.G = K * B
        self.step_tokens = self.G * T
        self.windows = (self.tokens.size - 1) // self.step_tokens
        if self.windows < 1:
            raise ValueError(f"{self.tokens.size} tokens; one step needs G*T + 1 = "
                             f"{self.step_tokens + 1}")

    def window_start(self, step: int) -> int:
        return (step % self.windows) * self.step_tokens

    def sequence(self, step: int, j: int) -> np.ndarray:
        """The T + 1 tokens of sequence j (0 <= j < G) of step `step`."""
        begin = self.window_start(step) + j * self.T
        return self.tokens[begin:begin + self.T + 1]

    def micro_batch_numpy(self, step: int, i: int) -> Tuple[np.ndarray, np.ndarray]:
        if not 0 <= i < self.K:
            raise ValueError(f"micro-step {i} outside [0, {self.K})")
        rows = np.stack([self.sequence(step, i * self.B + b) for b in range(self.B)]).astype(np.int64)
        return rows[:, :-1], rows[:, 1:]

    def micro_batch(self, step: int, i: int):
        x, y = self.micro_batch_numpy(step, i)
        return torch.from_numpy(x.copy()), torch.from_numpy(y.copy())


# ---------------------------------------------------------------- optimisation


def lr_at(step: int, max_lr: float, warmup: int, total_steps: int, schedule: str,
          min_lr_frac: float) -> float:
    """Linear warmup over `warmup` steps ((s+1)/W of max_lr), then constant or cosine to F*max_lr."""
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if schedule == "constant":
        return max_lr
    if schedule != "cosine":
        raise ValueError(f"unknown lr schedule '{schedule}' (constant or cosine)")
    min_lr = min_lr_frac * max_lr
    ratio = (step - warmup) / (total_steps - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (max_lr - min_lr)


def make_optimizer(model, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float):
    """AdamW with weight decay on parameters of ndim >= 2 (wte, wpe, weight matrices) only."""
    params = list(model.parameters())
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(beta1, beta2), eps=eps, foreach=False)


def global_grad_norm(params) -> float:
    """The L2 norm of all gradients, as a Python float.

    Squares are summed in float64: torch 1.13's float32 torch.norm of a large CPU tensor loses
    accuracy (GPT-2 124M at B=4, T=64: 27.95414 against the exact 27.95543, 4.6e-5 relative),
    which would make the reference the less accurate side of the parity check."""
    total = 0.0
    for p in params:
        if p.grad is not None:
            total += float(torch.sum(torch.square(p.grad.detach().double())))
    return math.sqrt(total)


def clip_grad_norm_(params, max_norm: float) -> float:
    """torch.nn.utils.clip_grad_norm_ semantics (norm type 2): every gradient is multiplied by
    min(1, max_norm / (norm + 1e-6)); returns the norm before clipping. Only the norm's accuracy
    differs from torch's (float64 sum of squares, see global_grad_norm)."""
    norm = global_grad_norm(params)
    coef = max_norm / (norm + 1e-6)
    if coef < 1.0:
        scale = torch.tensor(coef, dtype=torch.float32)
        for p in params:
            if p.grad is not None:
                p.grad.detach().mul_(scale.to(p.grad.dtype))
    return norm


def forward_backward(model, windows: TokenWindows, step: int) -> float:
    """Zeroes the gradients and accumulates the step's K micro-batches into them: each micro-step's
    loss is scaled by 1/K, so the gradient is that of the mean over all K*B*T targets. Returns the
    mean of the K micro-step losses."""
    for p in model.parameters():
        p.grad = None
    K = windows.K
    total = 0.0
    for i in range(K):
        x, y = windows.micro_batch(step, i)
        loss = model(x, y)
        (loss / K).backward()
        total += float(loss.item())
    return total / K


def flops_per_token(header: Dict[str, int], T: int) -> float:
    """llm.c's estimate: 6N + 6*L*C*T."""
    return 6.0 * llmc_files.parameter_count(header) + 6.0 * header["num_layers"] * header[
        "channels"] * T


# ---------------------------------------------------------------- training


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--init-from", help="llm.c GPT-2 checkpoint (version 3, float32)")
    p.add_argument("--data", help="llm.c token shard (version 1)")
    p.add_argument("--batch", type=int, default=4, help="sequences per micro-batch B")
    p.add_argument("--seq-len", type=int, default=64, help="tokens per sequence T")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per step K")
    p.add_argument("--steps", type=int, default=10, help="optimizer steps")
    p.add_argument("--optimizer", default="adamw", choices=["adamw"],
                   help="only adamw is modelled here")
    p.add_argument("--lr", type=float, default=3e-4, help="maximum learning rate")
    p.add_argument("--warmup", type=int, default=0, help="linear warmup steps")
    p.add_argument("--lr-schedule", default="cosine", choices=["constant", "cosine"])
    p.add_argument("--lr-min-frac", type=float, default=0.0, help="cosine ends at this * --lr")
    p.add_argument("--weight-decay", type=float, default=0.0,
                   help="AdamW weight decay (parameters of ndim >= 2 only)")
    p.add_argument("--grad-clip", type=float, default=1.0, help="global norm clip (0 = off)")
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.95)
    p.add_argument("--eps", type=float, default=1e-8)
    p.add_argument("--seed", type=int, default=0,
                   help="accepted for flag parity; the reference draws nothing at random")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--log-jsonl", help="write one JSON object per step to this file")
    p.add_argument("--checkpoint-out", help="write the trained weights as an llm.c checkpoint")
    p.add_argument("--peak-tflops", type=float, default=0.0,
                   help="device peak for the mfu field (default 0.1 per thread, as the trainer)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="float64 measures how far float32 rounding alone moves the numbers")
    p.add_argument("--quiet", action="store_true", help="no per-step console line")
    p.add_argument("--self-check", action="store_true",
                   help="run the reference's own assertions (no other flag needed) and exit")
    return p


def validate_args(a: argparse.Namespace) -> None:
    def fail(msg):
        raise SystemExit(f"gpt2_torch.py: {msg}")

    if not a.init_from or not a.data:
        fail("--init-from and --data are required (or use --self-check)")
    for name in ("batch", "seq_len", "grad_accum"):
        if getattr(a, name) < 1:
            fail(f"--{name.replace('_', '-')} must be positive")
    if a.steps < 0:
        fail("--steps must not be negative")
    if a.lr <= 0 or a.warmup < 0 or not 0.0 <= a.lr_min_frac <= 1.0:
        fail("need --lr > 0, --warmup >= 0 and --lr-min-frac in [0, 1]")
    if a.weight_decay < 0 or a.grad_clip < 0 or a.threads < 0 or a.eps <= 0:
        fail("--weight-decay, --grad-clip and --threads must not be negative, --eps positive")
    if not (0.0 <= a.beta1 < 1.0 and 0.0 <= a.beta2 < 1.0):
        fail("--beta1 and --beta2 must be in [0, 1)")


def configure_torch(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set (second call in one process)
            pass
    torch.use_deterministic_algorithms(True)


def train(a: argparse.Namespace, echo=print) -> List[dict]:
    """Trains as Meridian's trainer does; returns the per-step records (also written as JSONL)."""
    header, tensors = llmc_files.read_checkpoint(a.init_from)
    tokens = llmc_files.read_shard(a.data)
    V = header["vocab_size"]
    if tokens.size and int(tokens.max()) >= V:
        raise SystemExit(f"gpt2_torch.py: {a.data} holds token {int(tokens.max())} >= vocab {V}")
    if a.seq_len > header["max_seq_len"]:
        raise SystemExit(f"gpt2_torch.py: --seq-len {a.seq_len} exceeds the model's maxT "
                         f"{header['max_seq_len']}")
    model = GPT2(header, tensors, dtype=getattr(torch, a.dtype))
    del tensors
    windows = TokenWindows(tokens, a.batch, a.seq_len, a.grad_accum)
    params = list(model.parameters())
    optimizer = make_optimizer(model, a.lr, a.beta1, a.beta2, a.eps, a.weight_decay)
    tokens_per_step = a.batch * a.grad_accum * a.seq_len
    peak = a.peak_tflops if a.peak_tflops > 0 else 0.1 * (a.threads or torch.get_num_threads())
    fpt = flops_per_token(header, a.seq_len)

    log = open(a.log_jsonl, "w") if a.log_jsonl else None
    records = []
    try:
        for step in range(a.steps):
            t0 = time.perf_counter()
            loss = forward_backward(model, windows, step)
            if a.grad_clip > 0:
                norm = clip_grad_norm_(params, a.grad_clip)
            else:
                norm = global_grad_norm(params)
            lr = lr_at(step, a.lr, a.warmup, a.steps, a.lr_schedule, a.lr_min_frac)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.step()
            seconds = time.perf_counter() - t0
            tps = tokens_per_step / seconds
            rec = {"step": step, "loss": loss, "lr": lr, "grad_norm": norm,
                   "ms": seconds * 1e3, "tokens_per_s": tps, "mfu": tps * fpt / (peak * 1e12)}
            records.append(rec)
            if log:
                log.write(json.dumps(rec) + "\n")
                log.flush()
            if echo:
                echo(f"step {step + 1:4d}/{a.steps} | loss {loss:.6f} | lr {lr:.3e} | "
                     f"norm {rec['grad_norm']:.4f} | {rec['ms']:.1f} ms | {tps:.0f} tok/s")
    finally:
        if log:
            log.close()
    if a.checkpoint_out:
        llmc_files.write_checkpoint(a.checkpoint_out, header, model.to_llmc())
    return records


# ---------------------------------------------------------------- self-check


def _numpy_gpt2_loss(header, t, x: np.ndarray, y: np.ndarray) -> float:
    """A second, loop-based float64 forward in numpy (per sequence, per head, per position), written
    from the description rather than from the torch model, to check the torch model's wiring."""
    V, C, NH, L = (header[k] for k in ("vocab_size", "channels", "num_heads", "num_layers"))
    hs = C // NH
    t = {k: v.astype(np.float64) for k, v in t.items()}

    def layernorm(v, w, b):
        mu = v.mean(-1, keepdims=True)
        var = ((v - mu) ** 2).mean(-1, keepdims=True)
        return (v - mu) / np.sqrt(var + 1e-5) * w + b

    def gelu(v):
        return 0.5 * v * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v ** 3)))

    losses = []
    for b in range(x.shape[0]):
        T = x.shape[1]
        h = np.stack([t["wte"][x[b, p]] + t["wpe"][p] for p in range(T)])  # (T, C)
        for l in range(L):
            a = layernorm(h, t["ln1w"][l], t["ln1b"][l])
            qkv = a @ t["qkvw"][l].T + t["qkvb"][l]
            out = np.zeros((T, C))
            for head in range(NH):
                cols = slice(head * hs, head * hs + hs)
                q = qkv[:, 0 * C:1 * C][:, cols]
                k = qkv[:, 1 * C:2 * C][:, cols]
                v = qkv[:, 2 * C:3 * C][:, cols]
                for p in range(T):
                    s = np.array([q[p] @ k[u] for u in range(p + 1)]) / math.sqrt(hs)
                    w = np.exp(s - s.max())
                    w /= w.sum()
                    out[p, cols] = w @ v[:p + 1]
            h = h + out @ t["attprojw"][l].T + t["attprojb"][l]
            a = layernorm(h, t["ln2w"][l], t["ln2b"][l])
            h = h + gelu(a @ t["fcw"][l].T + t["fcb"][l]) @ t["fcprojw"][l].T + t["fcprojb"][l]
        h = layernorm(h, t["lnfw"], t["lnfb"])
        logits = h @ t["wte"][:V].T  # only the first V rows enter the softmax
        for p in range(T):
            z = logits[p] - logits[p].max()
            losses.append(math.log(np.exp(z).sum()) - z[y[b, p]])
    return float(np.mean(losses))


def self_check(threads: int) -> int:
    require_torch()
    configure_torch(threads or 2)
    checks = []

    def check(name, ok, detail=""):
        checks.append((name, bool(ok)))
        print(f"[{'ok' if ok else 'FAIL'}] {name}" + (f": {detail}" if detail else ""))

    with tempfile.TemporaryDirectory(prefix="gpt2_torch_selfcheck_") as tmp:
        # 1. file formats round-trip bit-exactly; init follows GPT-2's recipe
        V, Vp, maxT, L, NH, C = 1000, 1024, 64, 2, 4, 64
        header, tensors = llmc_files.make_random_gpt2(V, Vp, maxT, L, NH, C, seed=1234)
        ckpt = os.path.join(tmp, "model.bin")
        llmc_files.write_checkpoint(ckpt, header, tensors)
        h2, t2 = llmc_files.read_checkpoint(ckpt)
        same = h2 == header and all(np.array_equal(tensors[k], t2[k]) for k in tensors)
        size_ok = os.path.getsize(ckpt) == 1024 + 4 * llmc_files.parameter_count(header)
        check("checkpoint round-trip", same and size_ok,
              f"{llmc_files.parameter_count(header)} parameters")
        tok = llmc_files.make_random_tokens(20000, V, seed=99, kind="bigram")
        shard = os.path.join(tmp, "tokens.bin")
        llmc_files.write_shard(shard, tok)
        check("shard round-trip",
              np.array_equal(llmc_files.read_shard(shard), tok) and tok.max() < V
              and os.path.getsize(shard) == 1024 + 2 * tok.size)
        std_w = float(tensors["qkvw"].std())
        std_r = float(tensors["fcprojw"].std())
        check("GPT-2 init", abs(std_w - 0.02) < 1e-3 and abs(std_r - 0.02 / math.sqrt(2 * L)) < 1e-3
              and not tensors["wte"][V:].any() and tensors["wte"][:V].std() > 0.019
              and (tensors["ln1w"] == 1).all() and not tensors["qkvb"].any(),
              f"std(qkvw) {std_w:.5f}, std(fcprojw) {std_r:.5f} (expect "
              f"{0.02 / math.sqrt(2 * L):.5f}), padded wte rows zero")

        # 2. the data rule, by hand on a tiny shard whose token i is i
        tiny = np.arange(103, dtype=np.uint16)  # N = 103; B=2, T=4, K=2: G=4, G*T=16, W=6
        w = TokenWindows(tiny, B=2, T=4, K=2)
        x0, y0 = w.micro_batch_numpy(0, 0)
        x1, y1 = w.micro_batch_numpy(0, 1)
        x5, y5 = w.micro_batch_numpy(5, 1)
        x6, _ = w.micro_batch_numpy(6, 0)
        x8, y8 = w.micro_batch_numpy(8, 1)
        ok = (w.windows == 6
              and x0.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
              and y0.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]
              and x1.tolist() == [[8, 9, 10, 11], [12, 13, 14, 15]]
              and y1.tolist() == [[9, 10, 11, 12], [13, 14, 15, 16]]
              and x5.tolist() == [[88, 89, 90, 91], [92, 93, 94, 95]]   # last window: 80..96
              and y5.tolist() == [[89, 90, 91, 92], [93, 94, 95, 96]]
              and x6.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]           # step 6 wraps to window 0
              and x8.tolist() == [[40, 41, 42, 43], [44, 45, 46, 47]]   # step 8 = window 2, micro 1
              and y8.tolist() == [[41, 42, 43, 44], [45, 46, 47, 48]])
        edge = (TokenWindows(np.arange(97), 2, 4, 2).windows == 6        # N-1 = 96 = 6*16 exactly
                and TokenWindows(np.arange(96), 2, 4, 2).windows == 5)
        wk1 = TokenWindows(tiny, B=4, T=4, K=1)                          # same G: same sequences
        same_g = np.array_equal(np.concatenate([x0, x1]), wk1.micro_batch_numpy(0, 0)[0])
        check("data rule by hand", ok and edge and same_g,
              "N=103 B=2 T=4 K=2: W=6, step 6 -> window 0, last target token 96")

        # 3. the LR schedule by hand (max 1e-3, 3 warmup steps, 10 steps, cosine to 0)
        lrs = [lr_at(s, 1e-3, 3, 10, "cosine", 0.0) for s in range(10)]
        want = [1e-3 / 3, 2e-3 / 3, 1e-3, 1e-3] + [
            0.5e-3 * (1 + math.cos(math.pi * (s - 3) / 7)) for s in range(4, 10)]
        ok = all(abs(a - b) <= 1e-15 for a, b in zip(lrs, want))
        ok = ok and lr_at(9, 1e-3, 0, 10, "cosine", 0.1) == 1e-4 + 0.5 * (
            1 + math.cos(math.pi * 0.9)) * 0.9e-3 and lr_at(5, 1e-3, 3, 10, "constant", 0) == 1e-3
        check("lr schedule by hand", ok, " ".join(f"{v:.3e}" for v in lrs))

        # 4. the torch model against an independent loop-based float64 numpy forward
        model = GPT2(header, tensors)
        windows = TokenWindows(tok, B=2, T=16, K=1)
        xs, ys = windows.micro_batch_numpy(3, 0)
        with torch.no_grad():
            torch_loss = float(model(torch.from_numpy(xs), torch.from_numpy(ys)))
        np_loss = _numpy_gpt2_loss(header, tensors, xs, ys)
        rel = abs(torch_loss - np_loss) / abs(np_loss)
        check("model = numpy float64 forward", rel < 2e-6,
              f"torch {torch_loss:.7f} numpy {np_loss:.7f} rel {rel:.1e}")

        # 5. padded vocabulary rows take no part: random values there change nothing
        t_pad = {k: v.copy() for k, v in tensors.items()}
        t_pad["wte"][V:] = np.random.Generator(np.random.PCG64(5)).standard_normal((Vp - V, C)) * 3
        model_pad = GPT2(header, t_pad)
        xb, yb = windows.micro_batch(0, 0)
        loss_a = model(xb, yb)
        loss_b = model_pad(xb, yb)
        loss_b.backward()
        check("padded vocab rows excluded", float(loss_a) == float(loss_b)
              and not model_pad.wte.grad[V:].any(),
              "loss identical, zero gradient on rows V..Vp-1")

        # 6. causality: changing the last input token leaves earlier positions unchanged
        xc = xb.clone()
        xc[:, -1] = (xc[:, -1] + 1) % V
        with torch.no_grad():
            la, lc = model(xb), model(xc)
        check("causal attention", torch.allclose(la[:, :-1], lc[:, :-1], rtol=0, atol=1e-6)
              and not torch.allclose(la[:, -1], lc[:, -1]))

        # 7. gradient accumulation: K=2 with B equals K=1 with 2B (and K=4 with B/2)
        def grads_for(B, K, step):
            m = GPT2(header, tensors)
            loss = forward_backward(m, TokenWindows(tok, B=B, T=32, K=K), step)
            return loss, [p.grad.clone() for p in m.parameters()]

        ok_all = True
        details = []
        for step in (0, 200):  # step 200 wraps around (W = 156 for G*T = 128)
            l1, g1 = grads_for(4, 1, step)
            for B, K in ((2, 2), (1, 4)):
                lk, gk = grads_for(B, K, step)
                rel_l = abs(lk - l1) / abs(l1)
                rel_g = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(gk, g1))
                ok_all = ok_all and rel_l < 1e-6 and rel_g < 1e-5
                details.append(f"s{step} B{B}K{K}: loss rel {rel_l:.1e} grad rel {rel_g:.1e}")
        check("grad-accum K*B = one batch", ok_all, "; ".join(details))

        # 8. AdamW groups: ndim >= 2 decays (wte, wpe, 4 matrices per layer), the rest does not
        opt = make_optimizer(model, 1e-3, 0.9, 0.95, 1e-8, 0.1)
        n_decay = len(opt.param_groups[0]["params"])
        n_plain = len(opt.param_groups[1]["params"])
        check("AdamW parameter groups", n_decay == 2 + 4 * L and n_plain == 2 + 8 * L
              and opt.param_groups[1]["weight_decay"] == 0.0,
              f"{n_decay} decayed, {n_plain} not")

        # 9. training: step-0 loss ~ ln V, clipping, determinism, learning
        def run(extra):
            args = build_parser().parse_args(
                ["--init-from", ckpt, "--data", shard, "--batch", "4", "--seq-len", "32",
                 "--lr", "1e-3", "--warmup", "3", "--lr-schedule", "cosine", "--weight-decay",
                 "0.1", "--threads", str(threads or 2)] + extra)
            validate_args(args)
            return train(args, echo=None)

        r1 = run(["--steps", "10", "--grad-clip", "1.0"])
        r2 = run(["--steps", "10", "--grad-clip", "1.0"])
        loss0 = r1[0]["loss"]
        expect0 = math.log(V) + 0.5 * C * 0.02 ** 2  # logits ~ N(0, C * 0.02^2) at init
        check("step-0 loss ~ ln V", abs(loss0 - expect0) < 0.05,
              f"{loss0:.5f} vs ln V + C*0.02^2/2 = {expect0:.5f} (ln V = {math.log(V):.5f})")
        check("deterministic", [(r["loss"], r["grad_norm"]) for r in r1] ==
              [(r["loss"], r["grad_norm"]) for r in r2])
        check("loss falls on bigram data", r1[-1]["loss"] < loss0 - 0.05,
              f"{loss0:.4f} -> {r1[-1]['loss']:.4f} in 10 steps")
        # clipping: with clip 1e-3 the applied gradient has norm 1e-3, as with torch's own
        m, mt = GPT2(header, tensors), GPT2(header, tensors)
        forward_backward(m, windows, 0)
        forward_backward(mt, windows, 0)
        before = clip_grad_norm_(list(m.parameters()), 1e-3)
        after = global_grad_norm(list(m.parameters()))
        before_t = float(torch.nn.utils.clip_grad_norm_(list(mt.parameters()), 1e-3))
        same = max(float((a.grad - b.grad).abs().max() / b.grad.abs().max())
                   for a, b in zip(m.parameters(), mt.parameters()))
        check("clip_grad_norm_", abs(after - 1e-3) / 1e-3 < 1e-5 and before > 1e-3
              and abs(before - before_t) / before < 1e-5 and same < 1e-5,
              f"norm {before:.6f} -> {after:.8f}; torch's own: norm {before_t:.6f}, clipped "
              f"grads rel {same:.1e}")
        r3 = run(["--steps", "3", "--grad-clip", "0", "--grad-accum", "2"])
        check("grad-accum run", len(r3) == 3 and all(math.isfinite(r["loss"]) for r in r3))

    failed = [name for name, ok in checks if not ok]
    print(f"self-check: {len(checks) - len(failed)}/{len(checks)} passed"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def main(argv: Optional[List[str]] = None) -> int:
    a = build_parser().parse_args(argv)
    require_torch()
    if a.self_check:
        return self_check(a.threads)
    validate_args(a)
    configure_torch(a.threads)
    train(a, echo=None if a.quiet else print)
    return 0


if __name__ == "__main__":
    sys.exit(main())
