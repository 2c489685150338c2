"""Result files of a run folder: summary.json, results.npz, summary.md
and the average-accuracy plot. Everything is rebuilt from the per-run
``result.npz`` files, so it can be redone at any time (``jcl report``).
"""

import json
import os

import numpy as np

from jcl.analysis import evaluate
from jcl.core.errors import OutputError


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
    if 'hp_names' in result:
        out['hp'] = {str(n): np.asarray(v).reshape(-1)[0].item()
                     for n, v in zip(result['hp_names'],
                                     result['hp_values'])}
    if 'R_task' in result:
        t = evaluate.average_accuracy(np.asarray(result['R_task']))[:, -1]
        t_mean, t_sem = evaluate.mean_sem(t)
        out['task_il_avg_acc'] = t.tolist()
        out['task_il_avg_acc_mean'] = float(t_mean)
        out['task_il_avg_acc_sem'] = float(t_sem)
    if 'R_valid' in result:
        v = evaluate.average_accuracy(np.asarray(result['R_valid']))[:, -1]
        out['valid_avg_acc'] = v.tolist()
        out['valid_avg_acc_mean'] = float(np.mean(v))
    return out


def _points(result):
    """Distinct hyperparameter rows of a result, in order of appearance."""
    values = np.asarray(result['hp_values']).reshape(
        len(result['hp_names']), -1).T        # [rows, names]
    keys = [tuple(v) for v in values]
    seen = []
    for k in keys:
        if k not in seen:
            seen.append(k)
    return seen, keys


def expand_grid(results: dict) -> dict:
    """One entry per grid point: ``'ewc[ewc.lambda=1e+05]'``; results
    without a grid keep their name."""
    out = {}
    for name, r in results.items():
        if 'hp_values' not in r or np.asarray(r['hp_values']).ndim < 2:
            out[name] = r
            continue
        points, keys = _points(r)
        if len(points) == 1:
            out[name] = r
            continue
        names = [str(n) for n in r['hp_names']]
        varying = [i for i in range(len(names))
                   if len({p[i] for p in points}) > 1]
        for p in points:
            rows = np.array([k == p for k in keys])
            label = ','.join(f'{names[i]}={p[i]:g}' for i in varying)
            sub = {k: (np.asarray(v)[rows] if k in
                       ('R', 'R_init', 'R_valid', 'R_task', 'seeds') or
                       k.startswith('loss') else v)
                   for k, v in r.items()}
            sub['hp_values'] = np.asarray(r['hp_values'])[:, rows]
            out[f'{name}[{label}]'] = sub
    return out


def write_grid(folder: str, results: dict, grid: dict):
    """grid.json and grid.png: each point's validation and test accuracy
    (mean ± SEM over seeds) and the point chosen on validation data."""
    report = {}
    for name, r in results.items():
        if 'R_valid' not in r:
            continue
        points, keys = _points(r)
        names = [str(n) for n in r['hp_names']]
        rows_out = []
        for p in points:
            rows = np.array([k == p for k in keys])
            val = evaluate.average_accuracy(np.asarray(r['R_valid'])[rows])
            test = evaluate.average_accuracy(np.asarray(r['R'])[rows])
            vm, vs = evaluate.mean_sem(val[:, -1])
            tm, ts = evaluate.mean_sem(test[:, -1])
            rows_out.append({
                'hp': {n: float(v) for n, v in zip(names, p)
                       if n in grid},
                'valid_mean': float(vm), 'valid_sem': float(vs),
                'test_mean': float(tm), 'test_sem': float(ts)})
        best = max(range(len(rows_out)),
                   key=lambda i: rows_out[i]['valid_mean'])
        report[name] = {'points': rows_out, 'best': rows_out[best],
                        'chosen_on': 'validation split (held out from '
                                     'the training data)'}
    if not report:
        return
    _atomic_text(os.path.join(folder, 'grid.json'),
                 json.dumps(report, indent=1))
    _plot_grid(report, os.path.join(folder, 'grid.png'))


def _plot_grid(report, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, rep in report.items():
        hp_names = list(rep['points'][0]['hp'])
        if len(hp_names) != 1:
            continue  # a product grid is in grid.json only
        x = [p['hp'][hp_names[0]] for p in rep['points']]
        for kind, style in (('valid', '--'), ('test', '-')):
            m = 100 * np.array([p[f'{kind}_mean'] for p in rep['points']])
            e = 100 * np.array([p[f'{kind}_sem'] for p in rep['points']])
            ax.errorbar(x, m, yerr=e, fmt=style, marker='o', ms=3,
                        capsize=2, label=f'{name} ({kind})')
        ax.axvline(rep['best']['hp'][hp_names[0]], color='grey', lw=0.8)
        ax.set_xlabel(hp_names[0])
    if min(x) > 0:
        ax.set_xscale('log')
    ax.set_ylabel('average accuracy (%)')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
            if k.startswith('loss') or k in ('R', 'R_init', 'R_task'):
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
    scored = {n: s for n, s in summary.items() if 'task_il_avg_acc' in s}
    if scored:
        lines += ['The same networks scored with each task\'s own units '
                  '(Task-IL scoring of a Class-IL run):', '',
                  '| method | task-masked avg acc (%) |', '|---|---|']
        lines += [f"| {n} | {100 * s['task_il_avg_acc_mean']:.2f} ± "
                  f"{100 * s['task_il_avg_acc_sem']:.2f} |"
                  for n, s in scored.items()]
        lines.append('')
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
