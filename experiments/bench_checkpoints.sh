#!/usr/bin/env bash
# Usage: bash experiments/bench_checkpoints.sh (jcl installed; pins core 1; warm compilation cache)
# whole-process time of BI-R (1 seed, 500 iterations) with checkpoints only at task ends vs at every chunk end (50 steps)
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
export JAX_COMPILATION_CACHE_DIR=${TMPDIR:-/tmp}/ck-xla
A="run --protocol split-mnist --scenario class --method bir --iters 500"
J=jcl
taskset -c 1 $J $A --checkpoint-every 0 --out ${TMPDIR:-/tmp}/ck-warm --overwrite > /dev/null 2>&1
for r in 1 2 3; do
  for every in 0 50; do
    t0=$(date +%s.%N)
    taskset -c 1 $J $A --checkpoint-every $every --out ${TMPDIR:-/tmp}/ck-$every --overwrite > /dev/null 2>&1
    t1=$(date +%s.%N)
    echo "every=$every run=$r seconds=$(echo "$t1 - $t0" | bc)"
  done
done
