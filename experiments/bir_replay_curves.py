"""Replay quantity and quality (the BI-R paper's Fig. 4) as one command.

For generative replay and BI-R, with and without re-initialising the
networks before each task (`--reinit`), on split MNIST Class-IL:

* quantity: replayed samples per minibatch 1, 2, 4, ..., 256, every
  value a point of one vmapped grid (`--grid M.replay_size=...`,
  `--validation 0`: all points trained on the full data and scored on
  the test set). In one program every point draws the largest number
  (256) and weighs the ones past its own by 0, which fills a GPU; on a
  CPU, where vmap saves no arithmetic, `--quantity-runs` makes one run
  per value instead, each drawing only its own samples (about half the
  arithmetic over the nine points);
* quality: the generator's hidden units per layer 10 ... 1000
  (`--gen-hidden H,H`: GR's VAE, BI-R's decoder), one run per size.

Usage::

    python experiments/bir_replay_curves.py --seeds 3 --out runs/fig4

Extra arguments after ``--`` go to every `jcl run` (e.g. ``-- --iters
500``). Finished runs are kept, so the command resumes. Writes
``curves.json`` and ``curves.png`` in --out.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

QUANTITY = (1, 2, 4, 8, 16, 32, 64, 128, 256)
QUALITY = (10, 30, 100, 300, 1000)


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--protocol', default='split-mnist')
    p.add_argument('--scenario', default='class')
    p.add_argument('--methods', default='gr,bir')
    p.add_argument('--seeds', type=int, default=3)
    p.add_argument('--reinit', default='both', choices=('both', 'on', 'off'))
    p.add_argument('--parts', default='quantity,quality')
    p.add_argument('--quantity-runs', action='store_true',
                   help='one run per replay quantity (CPU), not one grid')
    p.add_argument('--out', required=True)
    p.add_argument('extra', nargs='*', help='arguments for jcl run')
    return p.parse_args()


def jcl_run(folder, args, method, *flags):
    """Runs ``jcl run`` into ``folder`` unless it finished; its summary."""
    summary = os.path.join(folder, 'summary.json')
    if not os.path.exists(summary):
        subprocess.run([sys.executable, '-m', 'jcl', 'run', '--protocol',
                        args.protocol, '--scenario', args.scenario,
                        '--method', method, '--seeds', str(args.seeds),
                        '--out', folder, *flags, *args.extra], check=True)
    with open(summary) as f:
        return json.load(f)


def point(s):
    return {'mean': 100 * s['avg_acc_mean'], 'sem': 100 * s['avg_acc_sem'],
            'per_seed': [100 * a for a in s['avg_acc']]}


def curves(args):
    out = {}
    reinits = {'both': (False, True), 'on': (True,), 'off': (False,)}
    for method in args.methods.split(','):
        for reinit in reinits[args.reinit]:
            label = f"{method}{' reinit' if reinit else ''}"
            flags = ['--reinit'] if reinit else []
            tag = f"{method}{'-reinit' if reinit else ''}"
            row = out.setdefault(label, {})
            if 'quantity' in args.parts and args.quantity_runs:
                row['quantity'] = {q: point(jcl_run(
                    os.path.join(args.out, f'quantity-{tag}-{q}'), args,
                    method, '--set', f'{method}.replay_size={q}',
                    '--validation', '0', *flags)[method]) for q in QUANTITY}
            elif 'quantity' in args.parts:
                grid = ','.join(map(str, QUANTITY))
                s = jcl_run(os.path.join(args.out, f'quantity-{tag}'), args,
                            method, '--grid',
                            f'{method}.replay_size={grid}',
                            '--validation', '0', *flags)
                row['quantity'] = {
                    q: point(s[f'{method}[{method}.replay_size={q:g}]'])
                    for q in QUANTITY}
            if 'quality' in args.parts:
                row['quality'] = {}
                for h in QUALITY:
                    s = jcl_run(os.path.join(args.out, f'quality-{tag}-{h}'),
                                args, method, '--gen-hidden', f'{h},{h}',
                                *flags)
                    row['quality'][h] = point(s[method])
    return out


def plot(report, path, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    parts = [p for p in ('quantity', 'quality')
             if any(p in r for r in report.values())]
    fig, axes = plt.subplots(1, len(parts), figsize=(4.6 * len(parts), 3.6),
                             squeeze=False)
    xlabel = {'quantity': 'replayed samples per minibatch',
              'quality': "generator's hidden units per layer"}
    for ax, part in zip(axes[0], parts):
        for label, r in report.items():
            if part not in r:
                continue
            x = np.array(sorted(r[part], key=float), dtype=float)
            m = np.array([r[part][k]['mean'] for k in sorted(
                r[part], key=float)])
            e = np.array([r[part][k]['sem'] for k in sorted(
                r[part], key=float)])
            style = '--' if 'reinit' in label else '-'
            ax.plot(x, m, style, marker='o', ms=3, label=label)
            ax.fill_between(x, m - e, m + e, alpha=0.15)
        ax.set_xscale('log')
        ax.set_xlabel(xlabel[part])
        ax.set_ylabel('average accuracy after the last task (%)')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    args = parse()
    os.makedirs(args.out, exist_ok=True)
    try:
        report = curves(args)
    except subprocess.CalledProcessError as e:
        print(f"bir_replay_curves: `jcl run` exited with {e.returncode} "
              f"(its message is above): {' '.join(e.cmd[2:])}",
              file=sys.stderr)
        return 1
    with open(os.path.join(args.out, 'curves.json'), 'w') as f:
        json.dump(report, f, indent=1)
    plot(report, os.path.join(args.out, 'curves.png'),
         f'{args.protocol}, {args.scenario}-incremental, {args.seeds} '
         f"seed{'s' if args.seeds != 1 else ''}")
    for label, r in report.items():
        for part, pts in r.items():
            print(f'{label:12s} {part:9s} ' + '  '.join(
                f"{k}:{v['mean']:.1f}" for k, v in pts.items()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
