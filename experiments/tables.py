"""Markdown tables of finished jcl runs beside the published numbers.

Reads the ``summary.json`` of every scenario folder under the given run
folders and prints one table per protocol: average accuracy after the last
task (mean ± SEM over seeds), the published value and whether
jcl is within the issue's tolerance: max(2 SEM, 1.5 points), Domain-IL
max(2 SEM, 3 points), with SEM the larger of jcl's and the published one.

Usage::

    python experiments/tables.py runs/smnist-reg runs/smnist-gr ...
"""

import argparse
import glob
import json
import math
import os
import sys

# The papers' published numbers (split MNIST: arXiv 1809.10635 / 1904.07734 /
# NMI 2022, 20 seeds): (mean, sem) in %, sem None if not given.
PUBLISHED = {
    'split-mnist': {
        'none': {'task': (85.15, 1.00), 'domain': (57.33, 1.66),
                 'class': (19.90, 0.02)},
        'ewc': {'task': (98.64, 0.22), 'domain': (63.95, 1.90),
                'class': (20.01, 0.06)},
        'si': {'task': (99.14, 0.11), 'domain': (63.77, 1.18),
               'class': (20.04, 0.08)},
        'lwf': {'task': (99.60, 0.03), 'domain': (71.02, 1.26),
                'class': (24.17, 0.51)},
        'xdg': {'task': (98.74, 0.31)},
        'gr': {'task': (99.47, 0.03), 'domain': (95.74, 0.23),
               'class': (91.24, 0.33)},
        'gr-distill': {'task': (99.59, 0.03), 'domain': (96.94, 0.14),
                       'class': (91.84, 0.27)},
        'joint': {'task': (99.64, 0.03), 'domain': (98.41, 0.06),
                  'class': (97.93, 0.04)},
    },
    'permuted-mnist': {
        m: {'domain': (v, None)} for m, v in {
            'none': 78.51, 'ewc': 94.31, 'online-ewc': 94.42, 'si': 95.33,
            'lwf': 72.64, 'gr': 95.09, 'gr-distill': 97.35,
            'joint': 97.59}.items()},
}
SCENARIOS = ('task', 'domain', 'class')
ORDER = ('none', 'joint', 'ewc', 'online-ewc', 'si', 'lwf', 'xdg',
         'separate', 'gr', 'gr-distill')


def collect(folders):
    """``{protocol: {(method, scenario): run summary}}``."""
    out = {}
    for folder in folders:
        paths = glob.glob(os.path.join(folder, 'summary.json')) + sorted(
            glob.glob(os.path.join(folder, '*', 'summary.json')))
        for path in paths:
            with open(path) as f:
                summary = json.load(f)
            for method, run in summary.items():
                key = (method, run['scenario'])
                out.setdefault(run['protocol'], {})[key] = run
    return out


def tolerance(scenario, sem_ours, sem_pub):
    sem = max(sem_ours, sem_pub or 0.0)
    return max(2 * sem, 3.0 if scenario == 'domain' else 1.5)


def fmt(mean, sem):
    return f'{mean:.2f} ± {sem:.2f}' if sem is not None else f'{mean:.2f}'


def table(protocol, runs):
    pub = PUBLISHED.get(protocol, {})
    lines = ['| method | scenario | seeds | published | jcl | diff | '
             'within tolerance | hyperparameters |',
             '|---|---|---|---|---|---|---|---|']
    methods = sorted({m for m, _ in runs},
                     key=lambda m: (ORDER.index(m) if m in ORDER
                                    else len(ORDER), m))
    for m in methods:
        for s in SCENARIOS:
            run = runs.get((m, s))
            if run is None:
                continue
            mean, sem = 100 * run['avg_acc_mean'], 100 * run['avg_acc_sem']
            p = pub.get(m, {}).get(s)
            hp = ', '.join(f'{k}={v:g}' for k, v in sorted(run['hp'].items())
                           if k != 'lr')
            if p is None:
                cells = ['–', fmt(mean, sem), '–', '–']
            else:
                diff = mean - p[0]
                ok = abs(diff) <= tolerance(s, sem, p[1])
                cells = [fmt(*p), fmt(mean, sem), f'{diff:+.2f}',
                         'yes' if ok else 'no']
            lines.append(f'| {m} | {s} | {len(run["avg_acc"])} | '
                         + ' | '.join(cells) + f' | {hp or "–"} |')
    return '\n'.join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('folders', nargs='+', help='jcl run folders (--out)')
    args = p.parse_args(argv)
    data = collect(args.folders)
    if not data:
        print('no finished runs (summary.json) under the given folders',
              file=sys.stderr)
        return 2
    for protocol, runs in data.items():
        secs = sum(r.get('seconds', 0.0) for r in runs.values())
        print(f'### {protocol}\n')
        print(table(protocol, runs))
        print(f'\n(total training time of these runs: '
              f'{math.floor(secs / 60)} min)\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
