#!/usr/bin/env bash
# On the GPU machine (run from the repository root with gpu-pack carried): correctness of the CUDA
# backend against the CPU, then seconds per outer iteration of DC and MDA on MNIST at ipc 1 and 10
# against the reference PyTorch code on an H100, as one table. `bash gpu-pack/check.sh accuracy` also
# condenses MNIST and FashionMNIST at ipc 1 with DC and MDA (1000 iterations, 10 evaluation networks).
set -euo pipefail
pack="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-$pack/out}"
mkdir -p "$out"
[ -x "$pack/gradmatch" ] || { xz -dkf "$pack/gradmatch.xz" && chmod +x "$pack/gradmatch"; }
gm() { bash "$pack/gpu-run.sh" "$pack/gradmatch" --quiet --device cuda --data-dir "$pack/data" "$@"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
git rev-parse --short HEAD 2>/dev/null | tee "$out/commit.txt" || true

echo "== correctness: CUDA vs CPU (f32) =="
gm device-check --json "$out/device-check.json" | tee "$out/device-check.txt"

echo "== speed: steady-state seconds per outer iteration =="
(while sleep 1; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits; done) > "$out/memory.log" &
sampler=$!
for method in dc mda; do
    for ipc in 1 10; do
        its=$([ "$ipc" = 1 ] && echo 60 || echo 12)
        gm condense --config "experiments/$method.toml" --ipc "$ipc" --iterations "$its" --num-eval 1 \
            --out "$out/speed-$method-ipc$ipc" > "$out/speed-$method-ipc$ipc.txt" 2>&1
    done
done
kill "$sampler"
python3 - "$out" <<'PY'
import json, statistics, sys, pathlib
out = pathlib.Path(sys.argv[1])
reference = {("dc", 1): 0.144, ("mda", 1): 0.151, ("dc", 10): 3.45, ("mda", 10): 2.94}
print(f"{'method':<6} {'ipc':>3} {'s/iter (ours)':>14} {'reference H100':>15} {'ratio ref/ours':>15}")
for (method, ipc), ref in reference.items():
    log = [json.loads(l) for l in open(out / f"speed-{method}-ipc{ipc}" / "log.jsonl")]
    steady = statistics.median(e["seconds"] for e in log[2:])  # the first calls JIT-compile PTX
    print(f"{method.upper():<6} {ipc:>3} {steady:>14.3f} {ref:>15.3f} {ref / steady:>15.2f}x")
mem = [int(x) for x in open(out / "memory.log").read().split() if x.isdigit()]
print(f"peak GPU memory used: {max(mem) if mem else 'n/a'} MiB")
PY

if [ "${1:-}" = accuracy ]; then
    echo "== accuracy: ipc 1, 1000 iterations, 10 evaluation networks =="
    for dataset in mnist fashion-mnist; do
        for method in dc mda; do
            gm condense --config "experiments/$method.toml" --dataset "$dataset" --num-eval 10 \
                --out "$out/acc-$dataset-$method" --json "$out/acc-$dataset-$method.json" | tail -2
        done
    done
fi
