#!/usr/bin/env python3
"""A byte-level gpt-mini on tinyshakespeare must get its loss below 2.5 within a few minutes on two
cores, and then sample text that looks like English words.

"Looks like English words" is measured: the share of the sample's words (letters only, length >= 2)
that occur as words in the training text. Random letters score well under 0.2; the model, once its
loss is near 2.3, scores far above. Exit 77 (skip) when the data file is absent.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

LOSS_TARGET = 2.5
ENGLISH_WORD_SHARE = 0.5


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--trainer", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--steps", type=int, default=700)
    parser.add_argument("--lr", default="3e-3")
    parser.add_argument("--temperature", default="0.7")
    args = parser.parse_args()
    if not os.path.exists(args.data):
        print(f"skipped: {args.data} not found")
        return 77
    os.makedirs(args.work_dir, exist_ok=True)
    log = os.path.join(args.work_dir, "shakespeare.jsonl")
    command = [args.trainer, "--model", "gpt-mini", "--data", args.data, "--batch", "16", "--seq-len", "128",
               "--steps", str(args.steps), "--lr", args.lr, "--warmup", "30", "--lr-schedule", "cosine",
               "--lr-min-frac", "0.1", "--weight-decay", "0.1", "--grad-clip", "1.0", "--threads", "2",
               "--sample", "400", "--temperature", args.temperature, "--log-jsonl", log]
    print(" ".join(command), flush=True)
    start = time.time()
    run = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.time() - start
    print(run.stdout[-3000:])
    if run.returncode != 0:
        print(run.stderr)
        return 1
    losses = [json.loads(line)["loss"] for line in open(log)]
    final = sum(losses[-10:]) / len(losses[-10:])
    sample = run.stdout.split("--- sample")[1].split("\n", 1)[1].rsplit("\n---", 1)[0]
    corpus_words = set(re.findall(r"[a-z]+", open(args.data, encoding="utf-8", errors="replace").read().lower()))
    sample_words = [w for w in re.findall(r"[a-z]+", sample.lower()) if len(w) >= 2]
    share = sum(w in corpus_words for w in sample_words) / max(len(sample_words), 1)
    print(f"{len(losses)} steps in {elapsed:.0f} s; mean loss of the last 10 steps {final:.3f} "
          f"(target < {LOSS_TARGET}); {len(sample_words)} sample words, {share:.0%} of them English "
          f"(target >= {ENGLISH_WORD_SHARE:.0%})")
    ok = final < LOSS_TARGET and len(sample_words) >= 20 and share >= ENGLISH_WORD_SHARE
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
