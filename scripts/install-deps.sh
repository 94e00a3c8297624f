#!/usr/bin/env bash
# Installs what Meridian needs to build, test and benchmark, from Debian 12 packages. Idempotent:
# packages already present are left alone. Needs root (or sudo).
set -euo pipefail

packages=(
  build-essential cmake ninja-build git
  libopenmpi-dev openmpi-bin        # launcher and the MPI communication backend
  libdnnl-dev libopenblas-dev       # CPU matmul (oneDNN; OpenBLAS for the comparison benchmark)
  ocl-icd-opencl-dev                # oneDNN's CMake config asks for OpenCL (Debian builds it with the
                                    # OpenCL runtime); only recommended by libdnnl-dev, so named here
  libcxxopts-dev nlohmann-json3-dev # command lines and JSON logs
  libgtest-dev libbenchmark-dev     # tests and microbenchmarks
  python3 python3-numpy python3-torch  # the independent PyTorch reference for parity tests
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
