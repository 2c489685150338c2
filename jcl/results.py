"""Result files of a run folder: summary.json, results.npz, summary.md
and the average-accuracy plot. Everything is rebuilt from the per-run
``result.npz`` files, so it can be redone at any time (``jcl report``).
"""

import json
import os

import numpy as np

from jcl import evaluate
from jcl.errors import OutputError


def run_summary(result: dict) -> dict:
    """JSON-ready summary of one method run (``R`` is ``[S, T, T]``)."""
    R = np.asarray(result['R'])
    avg = evaluate.average_accuracy(R)            # [S, T]
    mean, sem = evaluate.mean_sem(avg[:, -1])
    curve_mean, curve_sem = evaluate.mean_sem(avg)
    out = {
        'avg_acc': avg[:, -1].tolist(),
        'avg_acc_mean': float(mean),
        'avg_acc_sem': float(sem),
        'R': R.tolist(),
        'curve_mean': curve_mean.tolist(),
        'curve_sem': curve_sem.tolist(),
        'bwt': evaluate.backward_transfer(R).tolist(),
        'fwt': evaluate.forward_transfer(R, result['R_init']).tolist(),
        'forgetting': evaluate.forgetting(R).tolist(),
        'seeds': np.asarray(result['seeds']).tolist(),
        'seconds': float(np.sum(result['seconds'])),
    }
    for k in ('hp_names',):
        if k in result:
            out['hp'] = {str(n): np.asarray(v).tolist() for n, v in
                         zip(result['hp_names'], result['hp_values'])}
    return out


def write_all(folder: str, results: dict, meta: dict):
    """Writes summary.json, results.npz, summary.md and accuracy.png.

    Args:
      folder: the run folder. results: method name -> result dict (with
        ``R``, ``R_init``, ``seeds``, ``seconds`` and ``loss/<term>``
        arrays). meta: protocol/scenario facts for the summary text.
    """
    summary = {name: {**run_summary(r), 'scenario': meta['scenario'],
                      'protocol': meta['protocol']}
               for name, r in results.items()}
    _atomic_text(os.path.join(folder, 'summary.json'),
                 json.dumps(summary, indent=1))
    arrays = {}
    for name, r in results.items():
        for k, v in r.items():
            if k.startswith('loss') or k in ('R', 'R_init'):
                arrays[f'{name}/{k}'] = np.asarray(v)
    _atomic_npz(os.path.join(folder, 'results.npz'), arrays)
    _atomic_text(os.path.join(folder, 'summary.md'),
                 summary_markdown(summary, meta))
    plot_curves({meta['scenario']: summary},
                os.path.join(folder, 'accuracy.png'),
                title=meta['protocol'])
    return summary


def summary_markdown(summary: dict, meta: dict) -> str:
    """A short Markdown table: average accuracy, BWT, forgetting."""
    lines = [f"# {meta['protocol']}, {meta['scenario']}-incremental",
             '', f"{meta.get('note', '')}", '',
             '| method | seeds | avg acc (%) | BWT (%) | forgetting (%) '
             '| train s |', '|---|---|---|---|---|---|']
    for name, s in summary.items():
        bwt, bwt_sem = evaluate.mean_sem(np.asarray(s['bwt']))
        fg, _ = evaluate.mean_sem(np.asarray(s['forgetting']))
        lines.append(
            f"| {name} | {len(s['avg_acc'])} | "
            f"{100 * s['avg_acc_mean']:.2f} ± {100 * s['avg_acc_sem']:.2f}"
            f" | {100 * bwt:.2f} ± {100 * bwt_sem:.2f} | {100 * fg:.2f} | "
            f"{s['seconds']:.0f} |")
    lines += ['', 'avg acc: mean over tasks after the last task, mean ± '
              'SEM over seeds. R[i, j] per seed is in summary.json.', '']
    return '\n'.join(lines)


def plot_curves(by_scenario: dict, path: str, *, title=''):
    """Average accuracy against tasks learned, one line per method.

    Args:
      by_scenario: scenario -> {method: summary dict}; one panel each.
      path: PNG to write.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    n = len(by_scenario)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False)
    for ax, (scenario, summary) in zip(axes[0], by_scenario.items()):
        for name, s in summary.items():
            m = 100 * np.asarray(s['curve_mean'])
            e = 100 * np.asarray(s['curve_sem'])
            x = np.arange(1, len(m) + 1)
            ax.plot(x, m, marker='o', ms=3, label=name)
            ax.fill_between(x, m - e, m + e, alpha=0.2)
        ax.set_title(f'{scenario}-incremental')
        ax.set_xlabel('tasks learned')
        ax.set_ylabel('average accuracy (%)')
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    tmp = path + '.tmp.png'
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def _atomic_text(path, text):
    tmp = path + '.tmp'
    try:
        with open(tmp, 'w') as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(f'cannot write {path}: {e}') from None


def _atomic_npz(path, arrays):
    tmp = path + '.tmp.npz'
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(f'cannot write {path}: {e}') from None
