"""The task loop of two commits, whole ``jcl run`` processes alternated.

For each repeat runs the same command with an older commit's ``jcl`` (a
git worktree beside this checkout) and with this checkout's, one after
the other, each with a warm persistent compilation cache of its own (a
first, untimed run fills it), and reports the medians of the whole
process's wall time, of the steady state (the seconds of tasks 2..T,
evaluation included, per training step) and of the first task's seconds
(per step, with its evaluation). Pin it to one core::

    taskset -c 1 python experiments/bench_task_loop.py --old b4c9dfa \\
        --repeats 3 -- --protocol split-mnist --scenario class \\
        --method bir --iters 500

Without ``--old`` both sides are this checkout, told apart by flags
(``--old-flags '--log none' --new-flags '--log csv,tensorboard'``: what
the metric logs cost).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from bench_commits import worktree

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def once(source, argv, out, cache):
    env = {**os.environ, 'PYTHONPATH': source,
           'JAX_COMPILATION_CACHE_DIR': cache,
           'XLA_FLAGS': '--xla_cpu_multi_thread_eigen=false '
                        'intra_op_parallelism_threads=1'}
    t0 = time.time()
    subprocess.run([sys.executable, '-m', 'jcl', 'run', *argv, '--out', out,
                    '--overwrite'], check=True, env=env, cwd=source,
                   capture_output=True)
    wall = time.time() - t0
    runs = os.path.join(out, 'runs')
    method = os.listdir(runs)[0]
    with np.load(os.path.join(runs, method, 'result.npz')) as f:
        seconds = f['seconds']
        steps = f[next(k for k in f if k.startswith('loss/'))].shape[-1]
    return (wall, float(np.sum(seconds[1:])) / (steps * (len(seconds) - 1)),
            float(seconds[0]) / steps)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--old', default=None,
                   help='an older commit (default: this checkout again)')
    p.add_argument('--old-flags', default='', help='flags of the old side')
    p.add_argument('--new-flags', default='', help='flags of the new side')
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--work', default=os.path.join(tempfile.gettempdir(),
                                                  'jcl-bench-loop'))
    p.add_argument('argv', nargs=argparse.REMAINDER)
    args = p.parse_args()
    argv = args.argv[1:] if args.argv[:1] == ['--'] else args.argv
    old = args.old or f'this checkout {args.old_flags}'.strip()
    sides = {old: (worktree(args.old) if args.old else ROOT,
                   argv + args.old_flags.split()),
             'this checkout': (ROOT, argv + args.new_flags.split())}
    got = {s: [] for s in sides}
    for rep in range(args.repeats + 1):   # the first fills each cache
        for i, (side, (source, flags)) in enumerate(sides.items()):
            d = os.path.join(args.work, f'side{i}')
            run = once(source, flags, os.path.join(d, 'out'),
                       os.path.join(d, 'xla'))
            if rep:
                got[side].append(run)
    print('| commit | whole process s (median) | tasks 2.. ms per step '
          '(median) | task 1 ms per step (median) | runs |\n'
          '|---|---|---|---|---|')
    med = {}
    for side, rows in got.items():
        med[side] = [statistics.median(r[i] for r in rows)
                     for i in (0, 1, 2)]
        print(f'| {side} | {med[side][0]:.1f} | {1e3 * med[side][1]:.2f} | '
              f'{1e3 * med[side][2]:.2f} | ' + ', '.join(
                  f'{w:.1f} s / {1e3 * s:.2f} / {1e3 * f:.2f} ms'
                  for w, s, f in rows) + ' |')
    old, new = med[old], med['this checkout']
    print(f'\nnew / old: whole process {new[0] / old[0]:.3f}, steady state '
          f'{new[1] / old[1]:.3f}, first task {new[2] / old[2]:.3f}')


if __name__ == '__main__':
    main()
