#!/usr/bin/env bash
# The main job: installs what is missing (apt-get), builds, and trains a small byte-level GPT on two
# data-parallel ranks under mpirun, then samples from it. Extra arguments go to train_gpt2, e.g.
#   scripts/quickstart.sh --data path/to/tinyshakespeare.txt --steps 600
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # mpirun refuses root otherwise
exec mpirun --oversubscribe -np 2 build/bin/train_gpt2 --model gpt-mini --batch 8 --seq-len 128 --steps 300 \
  --lr 2e-3 --warmup 20 --lr-min-frac 0.1 --weight-decay 0.1 --threads 1 --sample 300 --temperature 0.8 "$@"
