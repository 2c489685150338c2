#!/usr/bin/env bash
# The GPU measurements the issues ask for, as one script sized for about
# nine minutes of an H100/H200 (not yet run on one) (each step has its own time limit, so one
# slow step cannot eat the others'):
#   1. BI-R, split MNIST Class-IL, whole process with compilation: 1 seed
#      and 64 vmapped seeds (issue 10);
#   2. rows per second of None and GR with 1..1024 vmapped seeds (issue 13);
#   3. CLR's training throughput at 32x32 and 224x224, one task's bank and
#      8 tasks' banks at once in one program (issue 12);
#   4. the step time of the BI-R paper's 100-permutation MNIST (issue 10).
#
#   JCL_DATA_DIR=folder-with-mnist.npz bash experiments/gpu_checks.sh OUTDIR
#   QUICK=1 bash experiments/gpu_checks.sh /tmp/g     # a short dry run (CPU)
#
# Needs jax with CUDA, flax, optax and chex; runs jcl from the checkout
# (PYTHONPATH), so nothing is installed. Logs and JSON lines go to OUTDIR.
set -u
out=${1:?usage: gpu_checks.sh OUTDIR}
mkdir -p "$out"
cd "$(dirname "$0")/.." || exit 1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export JCL_COMPILE_CACHE=0          # compilation counted in every wall time
py=${PYTHON:-python3}
if [ "${QUICK:-0}" = 1 ]; then
  iters=20; rows_iters=5; rows_seeds=1,4; big=8; steps=4; size=64; perms=3
  bank_counts='1 2'; batch=4
else
  iters=2000; rows_iters=500; rows_seeds=1,16,64,256,1024; big=64; steps=50
  size=224; perms=100; bank_counts='1 8'; batch=32
fi

step() {  # step NAME LIMIT_S COMMAND...: time one command, keep its log
  local name=$1 limit=$2; shift 2
  echo "=== $name (limit ${limit}s) $(date -u +%T)"
  local t0=$SECONDS
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc wall_s=$((SECONDS - t0))" | tee -a "$out/summary.txt"
  tail -n 4 "$out/$name.log"
}

$py -c 'import jax, flax, optax; print(jax.__version__, flax.__version__,
optax.__version__, jax.devices())' | tee "$out/summary.txt"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total \
  --format=csv,noheader | tee -a "$out/summary.txt"

for seeds in 1 "$big"; do
  step "bir-seeds$seeds" 150 $py -m jcl run --protocol split-mnist \
    --scenario class --method bir --class-outputs all --seeds "$seeds" \
    --iters "$iters" --out "$out/bir-seeds$seeds"
done
step rows 120 $py experiments/bench_rows.py --methods none,gr \
  --seeds "$rows_seeds" --iters "$rows_iters" --json "$out/rows.json"
for banks in $bank_counts; do
  for s in 32 "$size"; do
    step "clr-$s-banks$banks" 75 $py experiments/bench_clr.py --side jcl \
      --size "$s" --banks "$banks" --batch "$batch" --steps "$steps" \
      --warmup 10
  done
done
step p100-step 60 $py experiments/bench_step.py --protocol permuted-mnist \
  --scenario domain --method bir --permutations "$perms" --hidden 2000,2000 \
  --batch 256 --lr 1e-4 --iters 20
echo "=== done $(date -u +%T)"
