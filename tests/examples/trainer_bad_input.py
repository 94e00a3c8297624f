#!/usr/bin/env python3
"""Bad input to train_gpt2 must fail with a non-zero exit and a message naming what is wrong.

Usage: trainer_bad_input.py --trainer PATH --work-dir DIR --case NAME   (or --case all)
Each case builds its own fixtures (stdlib only), runs the trainer, and checks the exit code and that
stderr contains the expected words.
"""
import argparse
import os
import struct
import subprocess
import sys

SHARD_MAGIC, SHARD_VERSION = 20240520, 1


def write_shard(path, tokens, magic=SHARD_MAGIC, count=None, drop_bytes=0):
    header = [0] * 256
    header[0], header[1], header[2] = magic, SHARD_VERSION, len(tokens) if count is None else count
    data = struct.pack("<256i", *header) + struct.pack(f"<{len(tokens)}H", *tokens)
    with open(path, "wb") as f:
        f.write(data[: len(data) - drop_bytes])


def tokens(n, vocab=256):
    return [(i * 7919) % vocab for i in range(n)]


def cases(work, trainer):
    good = os.path.join(work, "good.bin")
    write_shard(good, tokens(20000))
    truncated = os.path.join(work, "truncated.bin")
    write_shard(truncated, tokens(20000), drop_bytes=100)
    wrong_magic = os.path.join(work, "wrong_magic.bin")
    write_shard(wrong_magic, tokens(1000), magic=12345)
    tiny = os.path.join(work, "tiny.bin")
    write_shard(tiny, tokens(50))
    big_tokens = os.path.join(work, "gpt2_tokens.bin")
    write_shard(big_tokens, tokens(5000, vocab=50257))
    checkpoint = os.path.join(work, "mini.bin")
    subprocess.run([trainer, "--model", "gpt-mini", "--steps", "0", "--checkpoint-out", checkpoint],
                   check=True, stdout=subprocess.DEVNULL)
    truncated_checkpoint = os.path.join(work, "mini_truncated.bin")
    with open(checkpoint, "rb") as f, open(truncated_checkpoint, "wb") as g:
        g.write(f.read()[:-4096])
    bad_magic_checkpoint = os.path.join(work, "mini_bad_magic.bin")
    with open(checkpoint, "rb") as f, open(bad_magic_checkpoint, "wb") as g:
        g.write(struct.pack("<i", 1) + f.read()[4:])

    common = ["--steps", "1", "--threads", "1"]
    return {
        "unknown_flag": (["--no-such-flag"], ["no-such-flag"]),
        "missing_data": (["--data", os.path.join(work, "missing.bin")] + common, ["missing.bin"]),
        "truncated_data": (["--data", truncated] + common, ["truncated.bin", "truncated"]),
        "wrong_magic_data": (["--data", wrong_magic] + common, ["wrong_magic.bin", "magic"]),
        "data_too_small": (["--data", tiny] + common, ["tiny.bin"]),
        "tokens_outside_vocab": (["--data", big_tokens] + common, ["gpt2_tokens.bin", "vocab"]),
        "checkpoint_contradicts_flags": (["--init-from", checkpoint, "--layers", "3"] + common,
                                         ["--layers", "mini.bin", "contradicts"]),
        "checkpoint_contradicts_model": (["--init-from", checkpoint, "--model", "gpt2-124m"] + common,
                                         ["--model", "contradicts"]),
        "truncated_checkpoint": (["--init-from", truncated_checkpoint] + common, ["mini_truncated.bin"]),
        "wrong_magic_checkpoint": (["--init-from", bad_magic_checkpoint] + common, ["mini_bad_magic.bin", "magic"]),
        "heads_not_dividing_channels": (["--heads", "5"] + common, ["heads", "divide", "channels"]),
        "seq_len_over_max_seq_len": (["--seq-len", "512"] + common, ["--seq-len", "max-seq-len"]),
        "bad_number": (["--batch", "zero"] + common, ["batch"]),
        "negative_batch": (["--batch", "-2"] + common, ["--batch"]),
        "unknown_schedule": (["--lr-schedule", "linear"] + common, ["linear"]),
        "unknown_model": (["--model", "gpt5"] + common, ["gpt5"]),
        # Output paths are checked before training, so no run ends unable to write what it made.
        "checkpoint_out_directory_missing": (["--checkpoint-out", os.path.join(work, "no_dir", "out.bin")] + common,
                                             ["--checkpoint-out", "no_dir", "does not exist"]),
        "log_jsonl_directory_missing": (["--log-jsonl", os.path.join(work, "no_dir", "log.jsonl")] + common,
                                        ["--log-jsonl", "no_dir", "does not exist"]),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--trainer", required=True)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--case", default="all")
    args = parser.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    table = cases(args.work_dir, args.trainer)
    names = sorted(table) if args.case == "all" else [args.case]
    failures = 0
    for name in names:
        flags, expected = table[name]
        run = subprocess.run([args.trainer] + flags, capture_output=True, text=True, timeout=120)
        missing = [word for word in expected if word not in run.stderr]
        ok = run.returncode != 0 and not missing
        print(f"{name}: exit {run.returncode}, stderr: {run.stderr.strip()}")
        if not ok:
            failures += 1
            print(f"  FAIL: expected a non-zero exit and {expected} in stderr; missing {missing}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
