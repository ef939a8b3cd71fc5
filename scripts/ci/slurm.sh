#!/usr/bin/env bash
# CI (issue 18): scripts/ablate.sbatch under a real single-node Slurm, as a user runs it.
#
# Installs Debian's slurm-wlm and munge when missing, starts munged, slurmctld and slurmd on localhost
# (no systemd, no cgroups: proctrack/linuxproc, task/none) with their own configuration, keys, sockets
# and state under one folder, then, on a tiny MNIST grid (2 cells, 1 experiment, a few iterations):
#   1. an array of 2 tasks submitted from a fresh folder (no runs/, no --output, no resource options):
#      records of both shards, the report;
#   2. the same array again: everything skipped, no record added;
#   3. single-task arrays without GRADMATCH_SHARDS (--array=1, --array=0): they fail at once, and
#      their logs give the exact command;
#   4. a second store: task 1 cancelled (scancel) mid-condensation, then resubmitted alone
#      (GRADMATCH_SHARDS=2 --array=1): it resumes from its checkpoint, and its records and set are
#      those of the uninterrupted run of step 1, bit for bit.
# Any failure exits non-zero after printing the task logs and the daemons' logs. Stops the daemons
# it started. Needs root (slurmd runs jobs as their users). A few minutes on 2 cores.
#
# Usage: bash scripts/ci/slurm.sh
#   GRADMATCH=path  use this binary (e.g. target/release/gradmatch) instead of the test suite's debug one
#                   (`cargo test --workspace --no-run`: nothing to build after CI's `cargo test`;
#                   dependencies are optimised in dev builds, so the debug binary is fast enough)
#   GRADMATCH_SLURM_DIR  the work folder (default /tmp/gradmatch-slurm-ci; emptied at the start)
#   KEEP=1          leave the work folder (stores, logs) in place at the end
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
sbatch_script="$repo/scripts/ablate.sbatch"
work="${GRADMATCH_SLURM_DIR:-/tmp/gradmatch-slurm-ci}"
started=$SECONDS

say() { printf '[slurm-ci %4ds] %s\n' $((SECONDS - started)) "$*"; }

[ "$(id -u)" = 0 ] || { say "run me as root: slurmd must run as root (CI runs as root)"; exit 1; }

# --- daemons of an earlier run of this script (a crash, or Ctrl-C before the clean-up) ------------
our_stepds() { # ours, and any in its last moments (its command line and environment already gone)
    local pid
    for pid in $(pgrep -x slurmstepd || true); do
        if grep -qzx "SLURM_CONF=$work/slurm.conf" "/proc/$pid/environ" 2>/dev/null ||
            [ -z "$(tr -d '\0' <"/proc/$pid/cmdline" 2>/dev/null)" ]; then echo "$pid"; fi
    done
}
stop_daemons() {
    local name pid
    # Job steps end shortly after their jobs (each slurmstepd reports to slurmd first): let ours (they
    # inherit slurmd's SLURM_CONF) end, so that none outlives the daemons; after 30 s, end them.
    for _ in $(seq 1 150); do
        [ -n "$(our_stepds)" ] || break
        sleep 0.2
    done
    for pid in $(our_stepds); do
        ! grep -qzx "SLURM_CONF=$work/slurm.conf" "/proc/$pid/environ" 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
    done
    for name in slurmd slurmctld munged; do
        [ -f "$work/run/$name.pid" ] || continue
        pid="$(cat "$work/run/$name.pid")"
        if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
            [ ! -d "/proc/$pid" ] || kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$work/run/$name.pid"
    done
}
stop_daemons
rm -rf "$work"
mkdir -p "$work"/{run,state,spool,logs,munge,fresh}
chmod 755 "$work"
chmod 711 "$work/munge"

dumped=""
dump() { # everything a failure needs to be understood
    [ -z "$dumped" ] || return 0
    dumped=1
    local f
    echo "=================== slurm-ci: diagnostics ==================="
    echo "--- squeue"; squeue -o '%.18i %.9P %.20j %.8T %.10M %R' 2>&1 || true
    echo "--- sinfo"; sinfo -N -l 2>&1 || true
    echo "--- scontrol show job"; scontrol show job 2>&1 | head -200 || true
    for f in "$work"/fresh/slurm-*.out; do
        [ -f "$f" ] || continue
        echo "--- task log $f"; cat "$f"
    done
    for f in "$work"/logs/munged.log "$work"/logs/slurmctld.log "$work"/logs/slurmd.log; do
        [ -f "$f" ] || continue
        echo "--- $f (last 150 lines)"; tail -n 150 "$f"
    done
    for f in "$work"/logs/*.daemon.out; do # what a daemon said before it opened its log, or as it died
        [ -f "$f" ] || continue
        echo "--- $f (last 40 lines)"; tail -n 40 "$f"
    done
    echo "============================================================="
}
fail() {
    say "FAILED: $*" >&2
    # In a command substitution only the message: the script's exit prints the diagnostics once.
    [ "$BASHPID" != "$$" ] || dump >&2
    exit 1
}
jobs_submitted=()
finish() {
    local rc=$?
    if [ "$rc" != 0 ]; then
        dump >&2
        [ ${#jobs_submitted[@]} -eq 0 ] || scancel "${jobs_submitted[@]}" 2>/dev/null || true
        sleep 1
    fi
    stop_daemons
    if [ "$rc" = 0 ] && [ -z "${KEEP:-}" ]; then rm -rf "$work"; fi
    [ "$rc" = 0 ] && say "passed" || say "failed (exit $rc); work folder: $work"
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

# --- 1. Slurm and munge ------------------------------------------------------------------------
missing=()
for tool in slurmctld:slurmd slurmd:slurmd sbatch:slurm-client munged:munge jq:jq; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge jq >/dev/null
fi

host="$(hostname -s)"
cpus="$(nproc)"
export SLURM_CONF="$work/slurm.conf"
cat >"$SLURM_CONF" <<EOF
# A single-node Slurm on localhost for CI: no systemd, no cgroups, no accounting.
ClusterName=gradmatch-ci
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$work/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/run/slurmctld.pid
SlurmdPidFile=$work/run/slurmd.pid
SlurmctldLogFile=$work/logs/slurmctld.log
SlurmdLogFile=$work/logs/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
# Finished jobs stay visible to scontrol (their states are checked below).
MinJobAge=3600
KillWait=5
InactiveLimit=0
SlurmctldTimeout=300
SlurmdTimeout=300
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

say "starting munged, slurmctld, slurmd: $(sbatch --version), $(munged --version 2>&1 | awk '{print $1; exit}'); node $host, $cpus CPUs"
if command -v mungekey >/dev/null; then
    mungekey --create --keyfile="$work/munge/munge.key" --force
else
    dd if=/dev/urandom of="$work/munge/munge.key" bs=1024 count=1 status=none
fi
chmod 400 "$work/munge/munge.key"
# munged: foreground (-F) in the background, so that its pid is the one recorded.
munged -F --force --key-file="$work/munge/munge.key" --socket="$work/munge/munge.socket" \
    --pid-file="$work/run/munged.pid.own" --seed-file="$work/munge/munged.seed" --log-file="$work/logs/munged.log" \
    >"$work/logs/munged.daemon.out" 2>&1 &
echo $! >"$work/run/munged.pid"
for _ in $(seq 1 50); do [ -S "$work/munge/munge.socket" ] && break; sleep 0.2; done
munge -n --socket="$work/munge/munge.socket" | unmunge --socket="$work/munge/munge.socket" >/dev/null ||
    fail "munged does not answer on $work/munge/munge.socket"
slurmctld -D -f "$SLURM_CONF" >"$work/logs/slurmctld.daemon.out" 2>&1 &
echo $! >"$work/run/slurmctld.pid"
slurmd -D -f "$SLURM_CONF" -N "$host" >"$work/logs/slurmd.daemon.out" 2>&1 &
echo $! >"$work/run/slurmd.pid"

alive() {
    local name
    for name in munged slurmctld slurmd; do
        [ -d "/proc/$(cat "$work/run/$name.pid")" ] || fail "$name exited (its log is below)"
    done
}
state=""
for _ in $(seq 1 120); do
    alive
    state="$(sinfo -h -n "$host" -o '%t' 2>/dev/null || true)"
    [ "$state" = idle ] && break
    sleep 1
done
[ "$state" = idle ] || fail "the node is not idle after 120 s (state: ${state:-no answer from slurmctld})"
say "node $host idle"

# --- 2. the binary, the data and the grid --------------------------------------------------------
if [ -n "${GRADMATCH:-}" ]; then
    bin="$(realpath "$GRADMATCH")"
else
    # The binary the test suite uses (`cargo build -p gradmatch-runner` would rebuild crates whose
    # features the tests widen): nothing to build after CI's `cargo test --workspace`.
    say "the debug binary: cargo test --workspace --no-run"
    bin="$(cd "$repo" && cargo test --workspace --no-run --message-format=json-render-diagnostics |
        jq -r 'select(.reason == "compiler-artifact" and .target.name == "gradmatch" and (.target.kind | index("bin")) and (.profile.test | not)) | .executable' |
        tail -n 1)" || fail "cargo test --workspace --no-run failed"
fi
[ -x "$bin" ] || fail "no gradmatch binary at $bin"
export GRADMATCH="$bin"
export GRADMATCH_DATA_DIR="$repo/data"
unset GRADMATCH_SHARDS GRADMATCH_DEVICE RAYON_NUM_THREADS
# Fetched once here, not by two tasks at once.
"$bin" --quiet data --dataset mnist >/dev/null

# 2 cells x 1 experiment: shard i of 2 runs cell i. Checkpoints every iteration, so that a cancelled
# condensation resumes mid-way.
grid="$work/slurm-ci.toml"
cat >"$grid" <<'EOF'
name = "slurm-ci"
description = "scripts/ci/slurm.sh: 2 cells, 1 experiment, tiny and checkpointed every iteration."
experiments = 1
[base]
dataset = "mnist"
model = "ConvNetW32"
[base.condense]
ipc = 1
iterations = 40
batch_real = 32
checkpoint_every = 1
[base.evaluation]
epochs = 2
num_eval = 1
test_limit = 500
[[axis]]
name = "method"
variants = [
  { label = "DC", set = {} },
  { label = "MD", set = { level.name = "multi-level", distance.name = "combined" } },
]
[table]
rows = ["method"]
EOF
"$bin" ablate "$grid" --check >/dev/null || fail "the CI grid $grid is invalid: $("$bin" ablate "$grid" --check 2>&1)"

# --- helpers -------------------------------------------------------------------------------------
submit() { # submit [env assignments...] -- [sbatch options and script arguments...]; prints the job id
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    local out
    out="$(cd "$work/fresh" && env "${envs[@]}" sbatch --parsable "$@" 2>&1)" || fail "sbatch $* refused: $out"
    out="${out%%;*}"
    jobs_submitted+=("$out")
    echo "$out"
}
wait_job() { # wait_job <job id> <seconds>: until no task of the job is pending or running
    local id="$1" limit="$2" t0=$SECONDS
    while [ -n "$(squeue -h -j "$id" -o %i 2>/dev/null)" ]; do
        alive
        [ $((SECONDS - t0)) -lt "$limit" ] ||
            fail "job $id still queued or running after $limit s: $(squeue -h -j "$id" -o '%i %T %R' | tr '\n' ';')"
        sleep 1
    done
}
task_states() { # task_states <job id>: "index:STATE:exit" for each array task (or the job), one a line
    scontrol -o show job "$1" | sed -n 's/.*ArrayTaskId=\([0-9]*\).*JobState=\([A-Z_]*\).* ExitCode=\([0-9:]*\).*/\1:\2:\3/p'
}
expect_states() { # expect_states <job id> <expected lines, e.g. "0:COMPLETED:0:0 1:COMPLETED:0:0">
    local got
    got="$(task_states "$1" | sort | tr '\n' ' ')"
    [ "${got% }" = "$2" ] || fail "job $1: tasks ended as [${got% }], expected [$2]"
}
task_log() { echo "$work/fresh/slurm-$1_$2.out"; }
expect_log() { # expect_log <job id> <task> <fixed string>
    local f
    f="$(task_log "$1" "$2")"
    [ -f "$f" ] || fail "no log $f for task $1_$2 (Slurm could not open it?)"
    grep -qF -- "$3" "$f" || fail "the log of task $1_$2 ($f) lacks \`$3\`"
}
records() { cat "$1"/records*.jsonl 2>/dev/null || true; }
count() { records "$1" | jq -s --arg kind "$2" '[.[] | select(.kind == $kind)] | length'; }
results() { # the figures that must not depend on interruptions: key, losses or accuracy
    records "$1" | jq -c 'select(.kind == "condensed" or .kind == "evaluated") | [.key, (.losses // .accuracy)]' | sort
}
tensor_bytes() { # the data section of a safetensors file (its header holds metadata in any order)
    local n
    n="$(od -An -t u8 -N 8 "$1" | tr -d ' ')"
    tail -c +$((9 + n)) "$1"
}

# --- 3. an array from a fresh folder -------------------------------------------------------------
# No runs/ folder, no --output (logs go to the submit folder), no --cpus-per-task or --gres.
store="$work/fresh/runs/ablations/slurm-ci"
say "array 0-1 from a fresh folder"
job="$(submit -- --array=0-1 "$sbatch_script" "$grid")"
wait_job "$job" 1200
expect_states "$job" "0:COMPLETED:0:0 1:COMPLETED:0:0"
for i in 0 1; do
    expect_log "$job" "$i" "shard $i/2"
    [ -s "$store/records-shard${i}of2.jsonl" ] || fail "shard $i wrote no $store/records-shard${i}of2.jsonl"
done
[ "$(count "$store" condensed)" = 2 ] && [ "$(count "$store" evaluated)" = 2 ] && [ "$(count "$store" failed)" = 0 ] ||
    fail "expected 2 condensed and 2 evaluated records, no failure, in $store: $(records "$store")"
"$bin" report "$store" >"$work/logs/report.out" 2>&1 || fail "gradmatch report $store failed: $(cat "$work/logs/report.out")"
for label in DC MD; do
    grep -q "$label" "$store/table.md" || fail "$store/table.md has no row $label: $(cat "$store/table.md")"
done
grep -q "n=1×1" "$store/table.md" || fail "$store/table.md lacks the cells' counts n=1×1: $(cat "$store/table.md")"
say "array done: $(count "$store" condensed) sets, $(count "$store" evaluated) evaluations; report ok"

# --- 4. the same array again: everything skipped ------------------------------------------------
before="$(cat "$store"/records*.jsonl | md5sum)"
say "array 0-1 again: everything must be skipped"
job="$(submit -- --array=0-1 "$sbatch_script" "$grid")"
wait_job "$job" 600
expect_states "$job" "0:COMPLETED:0:0 1:COMPLETED:0:0"
for i in 0 1; do expect_log "$job" "$i" "ran 0 units, skipped"; done
[ "$(cat "$store"/records*.jsonl | md5sum)" = "$before" ] || fail "the resubmission added records: $(records "$store")"

# --- 5. a single index without GRADMATCH_SHARDS: refused, with the command to use -----------------
for i in 1 0; do
    say "--array=$i without GRADMATCH_SHARDS: must fail, naming GRADMATCH_SHARDS=2"
    job="$(submit -- --array=$i "$sbatch_script" "$grid")"
    wait_job "$job" 300
    expect_states "$job" "$i:FAILED:2:0"
    expect_log "$job" "$i" "GRADMATCH_SHARDS=2 sbatch --array=$i"
done
[ "$(cat "$store"/records*.jsonl | md5sum)" = "$before" ] || fail "a refused task added records: $(records "$store")"

# --- 6. scancel mid-condensation, then the single task resubmitted: it resumes ------------------
resume="$work/resume-store"
say "array 0-1 into a second store; task 1 cancelled mid-condensation"
job="$(submit -- --array=0-1 "$sbatch_script" "$grid" --store "$resume")"
cell_log=""
t0=$SECONDS
while :; do
    alive
    cell_log="$(find "$resume/cells" -path '*MD*/e0/log.jsonl' 2>/dev/null | head -n 1 || true)"
    [ -n "$cell_log" ] && [ "$(wc -l <"$cell_log")" -ge 3 ] && break
    squeue -h -r -j "$job" -o %i 2>/dev/null | grep -qx "${job}_1" || fail "task ${job}_1 ended before 3 iterations of its condensation were logged"
    [ $((SECONDS - t0)) -lt 900 ] || fail "task ${job}_1 logged no 3 iterations in 900 s"
    sleep 0.2
done
scancel "${job}_1"
cell="$(dirname "$cell_log")"
wait_job "$job" 900
expect_states "$job" "0:COMPLETED:0:0 1:CANCELLED:0:15"
done_before="$(wc -l <"$cell/log.jsonl")"
[ -f "$cell/checkpoint.safetensors" ] || fail "the cancelled condensation left no checkpoint in $cell"
[ ! -f "$cell/synthetic.safetensors" ] && [ "$(count "$resume" condensed)" = 1 ] ||
    fail "the condensation of task 1 ended before scancel (raise iterations in this script's grid): $(records "$resume")"
say "task 1 cancelled after $done_before iterations; resubmitting it alone (GRADMATCH_SHARDS=2 --array=1)"
job="$(submit GRADMATCH_SHARDS=2 -- --array=1 "$sbatch_script" "$grid" --store "$resume")"
wait_job "$job" 900
expect_states "$job" "1:COMPLETED:0:0"
expect_log "$job" 1 "shard 1/2"
expect_log "$job" 1 "(resumed at iteration"
[ "$(count "$resume" condensed)" = 2 ] && [ "$(count "$resume" evaluated)" = 2 ] ||
    fail "the resumed store lacks records: $(records "$resume")"
[ "$(results "$resume")" = "$(results "$store")" ] ||
    fail "the resumed run differs from the uninterrupted one:
$(diff <(results "$store") <(results "$resume"))"
set_a="$(find "$store/cells" -path '*MD*/e0/synthetic.safetensors')"
set_b="$cell/synthetic.safetensors"
cmp -s <(tensor_bytes "$set_a") <(tensor_bytes "$set_b") || fail "the resumed set $set_b differs from the uninterrupted $set_a"
say "resumed: same losses, accuracies and set bytes as the uninterrupted run"
