"""Same sweep, two commits: are the accuracy matrices identical?

Runs short sweeps through the command line of this checkout and of
another commit (checked out as a git worktree beside it), then compares
the R matrices method by method: identical, or the largest difference.
The sweeps cover every method of the command line:

* split MNIST, Class-IL and Task-IL, 2 seeds, 100 iterations per task:
  every method defined in that scenario;
* the offline sequence, its first 2 tasks (1 epoch, at most 30 steps per
  task), a seeded torchvision-layout ResNet-18 (numpy, no download): the
  backbone methods and separate networks.

Usage::

    python experiments/compare_commits.py --old 029756e --out runs/compare

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
MLP = 'none,joint,ewc,online-ewc,si,lwf,gr,gr-distill,rtf,bir,er,agem,derpp'
SWEEP = [
    ('split-mnist', 'class', MLP + ',icarl', []),
    ('split-mnist', 'task', MLP + ',xdg,separate', []),
    ('offline-sequence', 'task',
     'clr,clr-full,sgd,sgd-ll,psp,supsup,eft,separate',
     ['--tasks', '2', '--epochs', '1']),
]
SEQUENCE_ITERS = 30


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--old', required=True, help='the commit to compare with')
    p.add_argument('--out', required=True, help='folder for both sweeps')
    p.add_argument('--seeds', type=int, default=2)
    p.add_argument('--iters', type=int, default=100)
    p.add_argument('--only', choices=('old', 'new'), default=None,
                   help='run one side only (no comparison)')
    return p.parse_args()


def worktree(rev, where):
    if not os.path.exists(where):
        subprocess.run(['git', '-C', ROOT, 'worktree', 'add', '--detach',
                        where, rev], check=True, capture_output=True)
    return where


def backbone(out):
    """A seeded ResNet-18 state dict (tests/models/seeded_resnet.py)."""
    path = os.path.join(out, 'resnet18-seeded.npz')
    if not os.path.exists(path):
        sys.path.insert(0, os.path.join(ROOT, 'tests', 'models'))
        import seeded_resnet
        keys = subprocess.run(
            [sys.executable, '-c', 'import json; from jcl.models import '
             'torchvision_import as t; print(json.dumps(t.torchvision_keys('
             '18)))'], check=True, capture_output=True, text=True,
            cwd=ROOT, env={**os.environ, 'PYTHONPATH': ROOT}).stdout
        shapes = {k: tuple(v) for k, v in json.loads(keys).items()}
        np.savez(path, **seeded_resnet.state_dict(shapes))
    return path


def sweep(source, out, seeds, iters, weights):
    """Runs the sweeps with the ``jcl`` of ``source`` into ``out``."""
    env = {**os.environ, 'PYTHONPATH': source, 'JCL_COMPILE_CACHE': '0'}
    for i, (protocol, scenario, methods, extra) in enumerate(SWEEP):
        folder = os.path.join(out, f'part{i}')
        if os.path.exists(os.path.join(folder, 'summary.md')):
            continue
        steps = str(SEQUENCE_ITERS if protocol == 'offline-sequence'
                    else iters)
        if protocol == 'offline-sequence':
            extra = extra + ['--backbone', weights]
        subprocess.run([sys.executable, '-m', 'jcl', 'run', '--protocol',
                        protocol, '--scenario', scenario, '--method',
                        methods, '--seeds', str(seeds), '--iters', steps,
                        *extra, '--out', folder], check=True, env=env,
                       cwd=source)


def matrices(out):
    """``{(protocol, scenario, method): R [S, T, T]}`` of a sweep."""
    got = {}
    for part in sorted(os.listdir(out)):
        for root, _, files in os.walk(os.path.join(out, part)):
            if 'summary.json' in files:
                with open(os.path.join(root, 'summary.json')) as f:
                    for method, run in json.load(f).items():
                        got[(run['protocol'], run['scenario'], method)] = \
                            np.asarray(run['R'])
    return got


def main():
    args = parse()
    os.makedirs(args.out, exist_ok=True)
    weights = backbone(os.path.abspath(args.out))
    old_src = worktree(args.old, os.path.join(tempfile.gettempdir(),
                                              f'jcl-{args.old}'))
    old_out = os.path.abspath(os.path.join(args.out, f'old-{args.old}'))
    new_out = os.path.abspath(os.path.join(args.out, 'new'))
    if args.only != 'new':
        sweep(old_src, old_out, args.seeds, args.iters, weights)
    if args.only != 'old':
        sweep(ROOT, new_out, args.seeds, args.iters, weights)
    if args.only:
        return 0
    old, new = matrices(old_out), matrices(new_out)
    rows, report = [], {}
    for key in sorted(old):
        a, b = old[key], new.get(key)
        name = ' | '.join(key)
        if b is None:
            rows.append(f'| {name} | missing in new | | |')
            continue
        diff = float(np.max(np.abs(a - b)))
        same = bool(np.array_equal(a, b))
        avg = [float(100 * x[:, -1, :].mean()) for x in (a, b)]
        report['/'.join(key)] = {'identical': same, 'max_abs_diff': diff,
                                 'old_final_avg': avg[0],
                                 'new_final_avg': avg[1]}
        rows.append(f'| {name} | '
                    f'{"identical" if same else f"max |dR| {diff:.4f}"} | '
                    f'{avg[0]:.2f} | {avg[1]:.2f} |')
    print('| protocol | scenario | method | R matrices | old final avg % | '
          'new final avg % |')
    print('|---|---|---|---|---|---|')
    print('\n'.join(rows))
    with open(os.path.join(args.out, 'compare.json'), 'w') as f:
        json.dump(report, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
