#!/usr/bin/env bash
# The CUDA build compiles, lint-free (issue 36): code under `feature = "cuda"` (opening a GPU, its free
# memory) is compiled on every submission, not first on a lent GPU. No GPU or CUDA toolkit here:
# candle's CUDA backend builds against NVIDIA's toolkit wheels and a stub driver library
# (../shared/cuda/env.sh and README.md), in its own target folder so that the CPU builds stay valid.
# Usage: bash scripts/ci/cuda-build.sh   (first run ~10 minutes on 2 cores, most of it nvcc)
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$(date +%s)
[ -f ../shared/cuda/env.sh ] || { echo "cuda build: ../shared/cuda/env.sh is missing (the shared folder beside the repository)"; exit 1; }
cargo fetch -q # env.sh makes its stub driver library from cudarc's sources
# shellcheck disable=SC1091
source ../shared/cuda/env.sh
CARGO_TARGET_DIR=target-cuda cargo clippy -q -p gradmatch-runner --features cuda -- -D warnings
echo "cuda build: clippy of gradmatch-runner --features cuda passed in $(($(date +%s) - started)) s"
