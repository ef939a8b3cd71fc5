#!/usr/bin/env bash
# The bounded GPU check: about 4 minutes of run time, hard-capped at 510 s (give the device call 600).
# On the GPU machine, from the repository root with gpu-pack/ carried:   bash gpu-pack/check.sh
#   1 agree       CUDA vs CPU: the matching gradient of every level x distance (f32, and with TF32)
#   2 bench       seconds per outer iteration / evaluation, ratio to the authors' code on an H100
#   3 bench-tf32  the same rows with --tf32
#   4 quick       the quick start with the seeds of the CPU figure in results/recipes.md
# Ends with one table: step, exit code, seconds, peak GPU memory, mean GPU utilisation. No step can
# stop the ones after it (no `set -e`; each runs under `timeout`), and a step never starts past the
# budget; the exit code is non-zero when a step failed, timed out or was skipped. With OUT set (the
# device tool's folder), everything lands in $OUT/gpu-check.tgz.
# Test knobs: CHECK_TIME_SCALE multiplies every limit; CHECK_DIR is the working folder.
set -uo pipefail
pack="$(cd "$(dirname "$0")" && pwd)"
dir=${CHECK_DIR:-/tmp/gm-check}
scale=${CHECK_TIME_SCALE:-1}
rm -rf "$dir" && mkdir -p "$dir"
scaled() { awk -v s="$1" -v k="$scale" 'BEGIN { printf "%.2f", s * k }'; }
deadline=$(awk -v now="$(date +%s.%N)" -v b="$(scaled 510)" 'BEGIN { printf "%.2f", now + b }')
export CUDA_CACHE_PATH=${CUDA_CACHE_PATH:-/tmp/gm-cuda-cache} CUDA_CACHE_MAXSIZE=4294967296 # PTX JIT-compiled once, then cached

sampler=
finish() {
    [ -n "$sampler" ] && kill "$sampler" 2>/dev/null && wait "$sampler" 2>/dev/null
    [ -n "${OUT:-}" ] && tar czf "$OUT/gpu-check.tgz" -C "$dir" . 2>/dev/null
}
trap finish EXIT

if [ ! -x "$pack/gradmatch" ]; then
    xz -dkf "$pack/gradmatch.xz" 2>/dev/null || python3 -c 'import lzma, shutil, sys
shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$pack/gradmatch.xz" "$pack/gradmatch"
    chmod +x "$pack/gradmatch"
fi

# step NAME LIMIT_S GRADMATCH-ARGS...: runs under min(LIMIT, time left), logs its exit code and times.
step() {
    local name=$1 limit left rc t0
    limit=$(scaled "$2")
    shift 2
    left=$(awk -v d="$deadline" -v now="$(date +%s.%N)" 'BEGIN { printf "%.2f", d - now }')
    t0=$(date +%s.%N)
    if awk -v l="$left" 'BEGIN { exit !(l < 1) }'; then
        echo "$name skipped $t0 $t0" >>"$dir/steps.txt"
        echo "== $name: skipped (the budget is spent)"
        return
    fi
    limit=$(awk -v a="$limit" -v b="$left" 'BEGIN { print (a < b ? a : b) }')
    timeout -k 5 "$limit" bash "$pack/gpu-run.sh" "$pack/gradmatch" --quiet --device cuda --data-dir "$pack/data" "$@" \
        >"$dir/$name.log" 2>&1
    rc=$?
    echo "$name $rc $t0 $(date +%s.%N)" >>"$dir/steps.txt"
    echo "== $name: exit $rc$( (( rc == 124 || rc == 137 )) && echo " (timed out after ${limit} s)")"
    tail -n 15 "$dir/$name.log"
}

timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$dir/gpu.txt"
echo "commit $(cat "$pack/commit.txt" 2>/dev/null || echo unknown)" | tee "$dir/commit.txt"
(while :; do
    echo "$(date +%s.%N),$(timeout 5 nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader,nounits | head -n 1)"
    sleep 0.5
done) >"$dir/gpu-usage.csv" 2>/dev/null &
sampler=$!

rows=dc-1,mda-1,dc-10,mda-10,eval-1
step agree 100 device-check --batch-real 64 --iterations 3 --json "$dir/agree.json"
step bench 150 bench --rows $rows --iterations 10 --json "$dir/bench.json"
step bench-tf32 120 bench --rows $rows --iterations 10 --tf32 --json "$dir/bench-tf32.json"
step quick 90 condense --config experiments/quick.toml --out "$dir/quick" --json "$dir/quick.json"

kill "$sampler" 2>/dev/null && wait "$sampler" 2>/dev/null
sampler=
timeout 30 python3 "$pack/summary.py" "$dir" | tee "$dir/summary.md"
awk '$2 != 0 { failed = 1 } END { exit failed }' "$dir/steps.txt" # non-zero when a step failed
