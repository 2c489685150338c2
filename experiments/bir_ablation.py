"""The BI-R paper's ablation (its Fig. 8) as one command and one chart.

Generative replay plus each of BI-R's components, and BI-R minus each of
them, each a `jcl run --method bir` with its switches set (BUILD_NOTES.md
and the README list them), then a bar chart of the average accuracy
after the last task (mean ± SEM over seeds) with GR and BI-R as lines.

Usage::

    python experiments/bir_ablation.py --protocol split-mnist \\
        --scenario class --seeds 5 --out runs/bir-ablation

Extra arguments after ``--`` go to every `jcl run` (e.g. ``-- --iters
500 --class-order shuffled``). Finished variants are kept, so the
command resumes. Writes ``ablation.json`` and ``ablation.png`` in --out.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

# BI-R's components, each with the switch that turns it off; the
# dg_prop of the gated variants is the protocol's default unless given
COMPONENTS = {
    'rtf': {'bir.rtf': 0},
    'con': {'bir.conditional': 0},
    'gat': {'bir.dg_prop': 0},
    'dis': {'bir.distill': 0},
}
OFF = {k: v for c in COMPONENTS.values() for k, v in c.items()}


def variants():
    """``{label: --set switches}``: GR, GR + each, BI-R, BI-R - each."""
    out = {'GR': dict(OFF)}
    for name, off in COMPONENTS.items():
        on = {k: v for k, v in OFF.items() if k not in off}
        out[f'GR +{name}'] = on
    out['BI-R'] = {}
    for name, off in COMPONENTS.items():
        out[f'BI-R -{name}'] = dict(off)
    return out


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--protocol', default='split-mnist')
    p.add_argument('--scenario', default='class')
    p.add_argument('--seeds', type=int, default=5)
    p.add_argument('--out', required=True)
    p.add_argument('extra', nargs='*', help='arguments for jcl run')
    return p.parse_args()


def run(label, switches, args):
    folder = os.path.join(args.out, label.replace(' ', '').replace('+', 'p')
                          .replace('-', 'm'))
    summary = os.path.join(folder, 'summary.json')
    if not os.path.exists(summary):
        sets = [x for k, v in switches.items() for x in ('--set', f'{k}={v}')]
        subprocess.run([sys.executable, '-m', 'jcl', 'run', '--protocol',
                        args.protocol, '--scenario', args.scenario,
                        '--method', 'bir', '--seeds', str(args.seeds),
                        '--out', folder, *sets, *args.extra], check=True)
    with open(summary) as f:
        s = json.load(f)['bir']
    return {'mean': 100 * s['avg_acc_mean'], 'sem': 100 * s['avg_acc_sem'],
            'per_seed': [100 * a for a in s['avg_acc']],
            'switches': switches}


def plot(report, path, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    labels = [k for k in report if k not in ('GR', 'BI-R')]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    y = np.arange(len(labels))
    m = [report[k]['mean'] for k in labels]
    e = [report[k]['sem'] for k in labels]
    colors = ['tab:blue' if k.startswith('GR') else 'tab:red' for k in labels]
    ax.barh(y, m, xerr=e, color=colors, alpha=0.7, capsize=3)
    for name, style in (('GR', '--'), ('BI-R', '-')):
        ax.axvline(report[name]['mean'], color='k', ls=style, lw=1,
                   label=f"{name} {report[name]['mean']:.1f}")
    ax.set_yticks(y, labels)
    ax.set_xlabel('average accuracy after the last task (%)')
    ax.set_title(title)
    ax.legend(fontsize=8, loc='lower right')
    ax.grid(axis='x', alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    args = parse()
    os.makedirs(args.out, exist_ok=True)
    report = {label: run(label, sw, args) for label, sw in variants().items()}
    with open(os.path.join(args.out, 'ablation.json'), 'w') as f:
        json.dump(report, f, indent=1)
    plot(report, os.path.join(args.out, 'ablation.png'),
         f'{args.protocol}, {args.scenario}-incremental, '
         f'{args.seeds} seeds')
    for label, r in report.items():
        print(f"{label:10s} {r['mean']:6.2f} ± {r['sem']:.2f}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
