"""Same sweep, two commits: are the accuracy matrices identical?

Runs a short split MNIST sweep (every method of the BUILD_NOTES tables in
every scenario it is defined for, 2 seeds, 200 iterations per task)
through the command line of this checkout and of another commit (checked
out as a git worktree beside it), then compares the R matrices method by
method: identical, or the largest difference.

Usage::

    python experiments/compare_commits.py --old de3f903 --out runs/compare

Both sides run with the same Python and packages; each imports its own
``jcl`` (``PYTHONPATH``). Prints a Markdown table and writes
``compare.json`` into ``--out``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP = [('all', 'none,joint,ewc,online-ewc,si,lwf,gr,gr-distill'),
         ('task', 'xdg,separate')]


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--old', required=True, help='the commit to compare with')
    p.add_argument('--out', required=True, help='folder for both sweeps')
    p.add_argument('--seeds', type=int, default=2)
    p.add_argument('--iters', type=int, default=200)
    return p.parse_args()


def worktree(rev, where):
    if not os.path.exists(where):
        subprocess.run(['git', '-C', ROOT, 'worktree', 'add', '--detach',
                        where, rev], check=True, capture_output=True)
    return where


def sweep(source, out, seeds, iters):
    """Runs the sweep with the ``jcl`` of ``source`` into ``out``."""
    env = {**os.environ, 'PYTHONPATH': source, 'JCL_COMPILE_CACHE': '0'}
    for i, (scenario, methods) in enumerate(SWEEP):
        folder = os.path.join(out, f'part{i}')
        if os.path.exists(os.path.join(folder, 'summary.md')):
            continue
        subprocess.run([sys.executable, '-m', 'jcl', 'run', '--protocol',
                        'split-mnist', '--scenario', scenario, '--method',
                        methods, '--seeds', str(seeds), '--iters',
                        str(iters), '--out', folder], check=True, env=env,
                       cwd=source)


def matrices(out):
    """``{(scenario, method): R [S, T, T]}`` of a finished sweep."""
    got = {}
    for part in sorted(os.listdir(out)):
        for root, _, files in os.walk(os.path.join(out, part)):
            if 'summary.json' in files:
                with open(os.path.join(root, 'summary.json')) as f:
                    for method, run in json.load(f).items():
                        got[(run['scenario'], method)] = np.asarray(run['R'])
    return got


def main():
    args = parse()
    os.makedirs(args.out, exist_ok=True)
    old_src = worktree(args.old, os.path.join(tempfile.gettempdir(),
                                              f'jcl-{args.old}'))
    old_out = os.path.abspath(os.path.join(args.out, f'old-{args.old}'))
    new_out = os.path.abspath(os.path.join(args.out, 'new'))
    sweep(old_src, old_out, args.seeds, args.iters)
    sweep(ROOT, new_out, args.seeds, args.iters)
    old, new = matrices(old_out), matrices(new_out)
    rows, report = [], {}
    for key in sorted(old):
        a, b = old[key], new.get(key)
        if b is None:
            rows.append(f'| {key[0]} | {key[1]} | missing in new | | |')
            continue
        diff = float(np.max(np.abs(a - b)))
        same = bool(np.array_equal(a, b))
        avg = [float(100 * x[:, -1, :].mean()) for x in (a, b)]
        report['/'.join(key)] = {'identical': same, 'max_abs_diff': diff,
                                 'old_final_avg': avg[0],
                                 'new_final_avg': avg[1]}
        rows.append(f'| {key[0]} | {key[1]} | '
                    f'{"identical" if same else f"max |dR| {diff:.4f}"} | '
                    f'{avg[0]:.2f} | {avg[1]:.2f} |')
    print('| scenario | method | R matrices | old final avg % | '
          'new final avg % |')
    print('|---|---|---|---|---|')
    print('\n'.join(rows))
    with open(os.path.join(args.out, 'compare.json'), 'w') as f:
        json.dump(report, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
