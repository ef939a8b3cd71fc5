#!/usr/bin/env bash
# Build the CUDA binary here (no GPU needed) and pack what the GPU machine needs into gpu-pack/:
# the compressed binary, ../shared/cuda/gpu-run.sh, the bounded check (check.sh, summary.py), the
# commit (.git does not travel) and MNIST/FashionMNIST.
# Then, with the device tool: carry ["gpu-pack"], command `bash gpu-pack/check.sh`, timeout_s 600.
# Recipe: ../shared/cuda/README.md (CUDA 13.0 wheels, link stub; first build ~9 min on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo fetch
# shellcheck disable=SC1091
source ../shared/cuda/env.sh
CARGO_TARGET_DIR=target-cuda cargo build --release --features cuda
cargo run --release -- data >/dev/null # both datasets in ./data
rm -rf gpu-pack && mkdir -p gpu-pack/data
strip -o gpu-pack/gradmatch target-cuda/release/gradmatch
xz -9 -T2 gpu-pack/gradmatch
cp ../shared/cuda/gpu-run.sh scripts/gpu/check.sh scripts/gpu/summary.py gpu-pack/
echo "$(git rev-parse --short=12 HEAD)$(git diff --quiet HEAD || echo -dirty)" > gpu-pack/commit.txt
cp -r data/fashion-mnist gpu-pack/data/
mkdir -p gpu-pack/data/mnist # gzipped: the carry limit is 64 MiB and the loader reads .gz
for f in data/mnist/*-ubyte; do gzip -9 -c "$f" > "gpu-pack/data/mnist/$(basename "$f").gz"; done
du -sh gpu-pack
