"""Tutorial: a sweep from Python.

SI's strength ``c`` on split MNIST, Domain-IL: a grid of 9 values x 3
seeds trains as one vmapped program (27 rows), with 10% of each task's
training data held out to choose ``c``; the plot shows validation and test
accuracy against ``c`` with the seeds' spread and the chosen point. Run
it from this folder::

    python sweep.py                 # the paper's 2000 iterations/task
    python sweep.py --iters 200     # a quicker look

It prints the table of the grid and writes ``sweep.png``.
"""

import argparse

import numpy as np

import jcl
from jcl.analysis.evaluate import average_accuracy
from jcl.tasks import catalog


def plot(result, path):
    """Validation and test accuracy (mean and range over seeds) against
    the grid's values; the chosen point marked."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    c = np.array([p['si.c'] for p in result.points])
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, R, style in (('validation', result.R_valid, '--'),
                           ('test', result.R, '-')):
        final = 100 * average_accuracy(R)[..., -1]          # [P, S]
        ax.plot(c, final.mean(1), style, marker='o', label=name)
        ax.fill_between(c, final.min(1), final.max(1), alpha=0.2)
    ax.axvline(c[result.chosen], color='grey', lw=0.8,
               label=f'chosen: c = {c[result.chosen]:g}')
    ax.set_xscale('log')
    ax.set_xlabel('SI strength c')
    ax.set_ylabel('average accuracy after the last task (%)')
    ax.set_title('split MNIST, Domain-IL, SI (3 seeds)')
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(iters=2000, seeds=(0, 1, 2), values=None, path='sweep.png',
         quiet=False, hidden=(400, 400)):
    proto = catalog.load_protocol('split-mnist', 'domain')
    hp = jcl.methods.catalog.default_hparams(
        ['si'], lr=1e-3, protocol='split-mnist', scenario='domain')
    values = list(np.logspace(-1, 7, 9) if values is None else values)

    def make_learner(static):
        return jcl.build_learner(proto, catalog.protocol_spec('split-mnist'),
                                 ['si'], hidden=hidden, iters=iters,
                                 batch=128, static_max=static)

    result = jcl.run_sweep(make_learner, proto, hparams=hp,
                           grid={'si.c': values}, seeds=seeds,
                           validation=0.1, progress=None if quiet else print)
    valid = 100 * average_accuracy(result.R_valid)[..., -1].mean(1)
    test = 100 * average_accuracy(result.R)[..., -1].mean(1)
    print('| si.c | validation % | test % |\n|---|---|---|')
    for i, point in enumerate(result.points):
        mark = ' (chosen)' if i == result.chosen else ''
        print(f"| {point['si.c']:g}{mark} | {valid[i]:.2f} | {test[i]:.2f} |")
    plot(result, path)
    return result


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=int, default=2000)
    main(iters=parser.parse_args().iters)
