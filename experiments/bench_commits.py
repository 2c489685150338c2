"""Step time of this checkout against another commit, in one run.

Runs each commit's own ``experiments/bench_split_mnist.py`` (the other
commit from a git worktree beside this checkout) for each method, in
alternation (old, new, old, new, ...), one thread, and prints the median
steady-state time per step and seed of each, and their ratio.

Usage (pin the whole run to one core on a shared machine)::

    taskset -c 1 python experiments/bench_commits.py --old de3f903 \\
        --methods none,si,gr --iters 500 --repeats 3
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--old', required=True, help='the commit to compare with')
    p.add_argument('--methods', default='none,si,gr')
    p.add_argument('--iters', type=int, default=500)
    p.add_argument('--seeds', type=int, default=1)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--json', default=None)
    return p.parse_args()


def worktree(rev):
    where = os.path.join(tempfile.gettempdir(), f'jcl-{rev}')
    if not os.path.exists(where):
        subprocess.run(['git', '-C', ROOT, 'worktree', 'add', '--detach',
                        where, rev], check=True, capture_output=True)
    return where


def once(source, method, iters, seeds):
    """One bench run of ``source``'s own script; its JSON record."""
    with tempfile.NamedTemporaryFile(suffix='.json') as f:
        subprocess.run(
            [sys.executable, 'experiments/bench_split_mnist.py',
             '--threads', '1', '--seeds', str(seeds), '--iters',
             str(iters), '--method', method, '--json', f.name],
            check=True, cwd=source, capture_output=True,
            env={**os.environ, 'PYTHONPATH': source,
                 'JCL_COMPILE_CACHE': '0'})
        return json.load(open(f.name))['runs'][0]


def main():
    args = parse()
    sides = {'old': worktree(args.old), 'new': ROOT}
    report = {}
    print(f'| method | {args.old} ms/step/seed | this checkout ms/step/seed '
          '| new / old | compile s old / new |')
    print('|---|---|---|---|---|')
    for method in args.methods.split(','):
        runs = {'old': [], 'new': []}
        for _ in range(args.repeats):
            for side, source in sides.items():
                runs[side].append(once(source, method, args.iters,
                                       args.seeds))
        ms = {s: float(np.median([r['ms_per_seed_step'] for r in v]))
              for s, v in runs.items()}
        comp = {s: float(np.median([r['compile_s'] for r in v]))
                for s, v in runs.items()}
        report[method] = {'ms_per_seed_step': ms, 'compile_s': comp,
                          'all': {s: [r['ms_per_seed_step'] for r in v]
                                  for s, v in runs.items()}}
        print(f"| {method} | {ms['old']:.3f} | {ms['new']:.3f} | "
              f"{ms['new'] / ms['old']:.3f} | {comp['old']:.1f} / "
              f"{comp['new']:.1f} |", flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
