#!/usr/bin/env bash
# Builds Meridian and runs every test: unit tests, gradient checks, kernel tests, multi-rank tests
# under mpirun, the PyTorch parity check and the end-to-end trainer checks.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
# mpirun refuses to start as root unless told; the multi-rank tests oversubscribe two cores.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --preset release "$@"
