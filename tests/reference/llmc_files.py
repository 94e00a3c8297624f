"""llm.c file formats for Meridian's PyTorch reference: GPT-2 checkpoints and token shards.

Stdlib + numpy only (no torch), so fixtures can be made by any interpreter that has numpy.

GPT-2 checkpoint (llm.c, version 3 = float32):
    256 x int32 header: [0] magic 20240326, [1] version 3, [2] max_seq_len maxT, [3] vocab V,
    [4] layers L, [5] heads NH, [6] channels C, [7] padded vocab Vp; the rest 0.
    Then the float32 tensors of GPT2_TENSOR_ORDER, back to back, row-major, little-endian.
    Linear weights are (out, in): y = x W^T + b.

Token shard (llm.c, version 1):
    256 x int32 header: [0] magic 20240520, [1] version 1, [2] token count N; the rest 0.
    Then N uint16 tokens.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections import OrderedDict
from typing import Dict, Tuple

import numpy as np

GPT2_MAGIC = 20240326
GPT2_VERSION_F32 = 3
SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_INTS = 256

HEADER_FIELDS = ("max_seq_len", "vocab_size", "num_layers", "num_heads", "channels",
                 "padded_vocab_size")

# (name, shape as a function of the header), in file order.
GPT2_TENSOR_ORDER = (
    ("wte", lambda h: (h["padded_vocab_size"], h["channels"])),
    ("wpe", lambda h: (h["max_seq_len"], h["channels"])),
    ("ln1w", lambda h: (h["num_layers"], h["channels"])),
    ("ln1b", lambda h: (h["num_layers"], h["channels"])),
    ("qkvw", lambda h: (h["num_layers"], 3 * h["channels"], h["channels"])),
    ("qkvb", lambda h: (h["num_layers"], 3 * h["channels"])),
    ("attprojw", lambda h: (h["num_layers"], h["channels"], h["channels"])),
    ("attprojb", lambda h: (h["num_layers"], h["channels"])),
    ("ln2w", lambda h: (h["num_layers"], h["channels"])),
    ("ln2b", lambda h: (h["num_layers"], h["channels"])),
    ("fcw", lambda h: (h["num_layers"], 4 * h["channels"], h["channels"])),
    ("fcb", lambda h: (h["num_layers"], 4 * h["channels"])),
    ("fcprojw", lambda h: (h["num_layers"], h["channels"], 4 * h["channels"])),
    ("fcprojb", lambda h: (h["num_layers"], h["channels"])),
    ("lnfw", lambda h: (h["channels"],)),
    ("lnfb", lambda h: (h["channels"],)),
)

# The real GPT-2 124M shape (llm.c's gpt2_124M.bin).
GPT2_124M = dict(max_seq_len=1024, vocab_size=50257, num_layers=12, num_heads=12, channels=768,
                 padded_vocab_size=50304)


def make_header(max_seq_len: int, vocab_size: int, num_layers: int, num_heads: int, channels: int,
                padded_vocab_size: int) -> Dict[str, int]:
    h = dict(max_seq_len=int(max_seq_len), vocab_size=int(vocab_size), num_layers=int(num_layers),
             num_heads=int(num_heads), channels=int(channels),
             padded_vocab_size=int(padded_vocab_size))
    validate_header(h)
    return h


def validate_header(h: Dict[str, int]) -> None:
    for key in HEADER_FIELDS:
        if h[key] <= 0:
            raise ValueError(f"GPT-2 header: {key} must be positive, got {h[key]}")
    if h["padded_vocab_size"] < h["vocab_size"]:
        raise ValueError(f"GPT-2 header: padded vocab {h['padded_vocab_size']} < vocab "
                         f"{h['vocab_size']}")
    if h["channels"] % h["num_heads"] != 0:
        raise ValueError(f"GPT-2 header: channels {h['channels']} not divisible by heads "
                         f"{h['num_heads']}")


def tensor_shapes(h: Dict[str, int]) -> "OrderedDict[str, Tuple[int, ...]]":
    return OrderedDict((name, shape(h)) for name, shape in GPT2_TENSOR_ORDER)


def parameter_count(h: Dict[str, int]) -> int:
    return sum(int(np.prod(s)) for s in tensor_shapes(h).values())


def _atomic_write(path: str, chunks) -> None:
    """Writes to a temporary file next to `path`, fsyncs, renames: no half-written file in place."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(memoryview(np.ascontiguousarray(chunk)).cast("B"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_header(f, path: str, magic: int, what: str) -> np.ndarray:
    raw = f.read(HEADER_INTS * 4)
    if len(raw) != HEADER_INTS * 4:
        raise ValueError(f"{path}: too short for an llm.c {what} header")
    header = np.frombuffer(raw, dtype="<i4")
    if int(header[0]) != magic:
        raise ValueError(f"{path}: bad magic {int(header[0])} (an llm.c {what} has {magic})")
    return header


# ---------------------------------------------------------------- GPT-2 checkpoints


def read_checkpoint(path: str):
    """Returns (header dict, OrderedDict name -> float32 ndarray) of an llm.c version 3 checkpoint."""
    with open(path, "rb") as f:
        raw = _read_header(f, path, GPT2_MAGIC, "GPT-2 checkpoint")
        if int(raw[1]) != GPT2_VERSION_F32:
            raise ValueError(f"{path}: version {int(raw[1])}; only version 3 (float32) is read here")
        h = dict(zip(HEADER_FIELDS, (int(v) for v in raw[2:8])))
        if h["padded_vocab_size"] == 0:  # old llm.c files: no padding
            h["padded_vocab_size"] = h["vocab_size"]
        validate_header(h)
        shapes = tensor_shapes(h)
        total = sum(int(np.prod(s)) for s in shapes.values())
        data = np.fromfile(f, dtype="<f4")
    if data.size != total:
        raise ValueError(f"{path}: holds {data.size} floats after the header, the header implies "
                         f"{total}")
    tensors = OrderedDict()
    offset = 0
    for name, shape in shapes.items():
        n = int(np.prod(shape))
        tensors[name] = data[offset:offset + n].reshape(shape).astype(np.float32, copy=True)
        offset += n
    return h, tensors


def write_checkpoint(path: str, h: Dict[str, int], tensors) -> None:
    """Writes an llm.c version 3 (float32) checkpoint atomically. `tensors`: name -> array."""
    validate_header(h)
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[0] = GPT2_MAGIC
    header[1] = GPT2_VERSION_F32
    header[2:8] = [h[k] for k in HEADER_FIELDS]
    chunks = [header]
    for name, shape in tensor_shapes(h).items():
        t = np.asarray(tensors[name])
        if tuple(t.shape) != tuple(shape):
            raise ValueError(f"checkpoint tensor {name}: shape {t.shape}, expected {shape}")
        chunks.append(t.astype("<f4", copy=False))
    _atomic_write(path, chunks)


def make_random_gpt2(V: int, Vp: int, maxT: int, L: int, NH: int, C: int, seed: int):
    """GPT-2 initialisation (as in GPT-2 / nanoGPT / llm.c): N(0, 0.02) weights and embeddings,
    residual projections (attprojw, fcprojw) N(0, 0.02/sqrt(2L)), biases 0, LayerNorm weight 1 and
    bias 0, padded wte rows V..Vp-1 zero. Returns (header, OrderedDict name -> float32 ndarray)."""
    h = make_header(maxT, V, L, NH, C, Vp)
    rng = np.random.Generator(np.random.PCG64(seed))
    std = 0.02
    residual_std = std / math.sqrt(2 * L)
    tensors = OrderedDict()
    for name, shape in tensor_shapes(h).items():
        if name in ("wte", "wpe", "qkvw", "fcw"):
            t = rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
        elif name in ("attprojw", "fcprojw"):
            t = rng.standard_normal(shape, dtype=np.float32) * np.float32(residual_std)
        elif name in ("ln1w", "ln2w", "lnfw"):
            t = np.ones(shape, dtype=np.float32)
        else:  # biases and LayerNorm biases
            t = np.zeros(shape, dtype=np.float32)
        tensors[name] = t
    tensors["wte"][V:, :] = 0.0
    return h, tensors


# ---------------------------------------------------------------- token shards


def read_shard(path: str) -> np.ndarray:
    """Returns the uint16 tokens of an llm.c version 1 token shard."""
    with open(path, "rb") as f:
        header = _read_header(f, path, SHARD_MAGIC, "token shard")
        if int(header[1]) != SHARD_VERSION:
            raise ValueError(f"{path}: shard version {int(header[1])}, expected {SHARD_VERSION}")
        count = int(header[2])
        tokens = np.fromfile(f, dtype="<u2")
    if tokens.size != count:
        raise ValueError(f"{path}: header says {count} tokens, the file holds {tokens.size}")
    return tokens.astype(np.uint16, copy=False)


def write_shard(path: str, tokens) -> None:
    """Writes an llm.c version 1 token shard atomically."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError("token shard: tokens must be one-dimensional")
    if tokens.size and (tokens.min() < 0 or tokens.max() > 65535):
        raise ValueError("token shard: tokens must fit uint16")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[0] = SHARD_MAGIC
    header[1] = SHARD_VERSION
    header[2] = tokens.size
    _atomic_write(path, [header, tokens.astype("<u2")])


def make_random_tokens(n: int, V: int, seed: int, kind: str = "uniform") -> np.ndarray:
    """n tokens in [0, V) as uint16, from numpy's seeded Generator.

    kind "uniform": independent uniform draws (loss stays near ln V: nothing to learn).
    kind "bigram": a random sparse bigram chain (each token has 4 possible successors, the chain
    starts from a Zipf-like unigram), so a model's loss falls visibly within a few steps; parity
    checks use it so that a wrong update shows in the loss, not only in the gradient norm."""
    if not 0 < V <= 65536:
        raise ValueError(f"vocab {V} does not fit uint16 tokens")
    rng = np.random.Generator(np.random.PCG64(seed))
    if kind == "uniform":
        return rng.integers(0, V, size=n, dtype=np.int64).astype(np.uint16)
    if kind != "bigram":
        raise ValueError(f"unknown token kind '{kind}' (uniform or bigram)")
    ranks = np.arange(1, V + 1, dtype=np.float64)
    unigram = (1.0 / ranks) / np.sum(1.0 / ranks)
    successors = rng.choice(V, size=(V, 4), p=unigram)  # 4 likely next tokens per token
    out = np.empty(n, dtype=np.int64)
    out[0] = rng.choice(V, p=unigram)
    picks = rng.integers(0, 4, size=n)
    restarts = rng.random(n) < 0.1  # 10%: a fresh Zipf draw instead of a successor
    fresh = rng.choice(V, size=n, p=unigram)
    for i in range(1, n):
        out[i] = fresh[i] if restarts[i] else successors[out[i - 1], picks[i]]
    return out.astype(np.uint16)
