#!/usr/bin/env bash
# Configures and builds Meridian (Release, Ninja) into build/. Every program lands in build/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release "$@"
cmake --build --preset release
