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
    """Average accuracy against tasks learned, a row per scenario: each
    method's mean over seeds (thick, final value at its end) and each seed
    (thin) on an axis fitted to the data, and where the best methods end
    close together high in a wide range, a panel zooming in on them."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    rows = [(sc, {n: 100 * evaluate.average_accuracy(np.asarray(s['R']))
                  for n, s in d.items()}) for sc, d in by_scenario.items()]
    names = dict.fromkeys(n for _, curves in rows for n in curves)
    color = {n: colormaps['tab20']((2 * i + i // 10) % 20)  # tab10 first
             for i, n in enumerate(names)}
    zooms = [_zoom(curves) for _, curves in rows]
    fig = Figure(figsize=(9, max(5.5, 4.2 * len(rows))))
    axes = fig.subplots(len(rows), 1 + any(zooms), squeeze=False,
                        width_ratios=[3, 2][:1 + any(zooms)])
    for (scenario, curves), zoom, ax_row in zip(rows, zooms, axes):
        for ax, ylim, name in zip(ax_row, (_span(curves.values()), zoom), (
                f'{scenario}-incremental', 'the grey band, enlarged')):
            for n, c in curves.items() if ylim else ():
                x = np.arange(1, c.shape[1] + 1)
                ax.plot(x, c.T, color=color[n], lw=0.7, alpha=0.4)
                ax.plot(x, c.mean(0), color=color[n], lw=2, marker='o',
                        ms=4, label=f'{n} {c[:, -1].mean():.1f}')
                ax.set(ylim=ylim, xticks=x, title=name, xlabel='tasks '
                       'learned', ylabel='average accuracy (%)')
            ax.grid(alpha=0.3)
        if zoom:
            ax_row[0].axhspan(*zoom, color='0.9', zorder=0)
    fig.suptitle(f'{title + ": " if title else ""}thick line: mean over '
                 'seeds; thin lines: each seed')
    fig.tight_layout()
    for ax in axes.flat:
        _end_labels(ax, fig)
    tmp = path + '.tmp.png'
    fig.savefig(tmp, dpi=150, bbox_inches='tight', pad_inches=0.15)
    os.replace(tmp, path)


def _span(curves, margin=0.06):
    """A range around every value of ``curves``, within [0, 100.5]."""
    v = np.concatenate([np.ravel(c) for c in curves])
    pad = max(margin * (v.max() - v.min()), 0.5)
    return max(v.min() - pad, 0.0), min(v.max() + pad, 100.5)


def _zoom(curves):
    """The range of the 2+ methods ending near the best, if narrow."""
    best = max(c[:, -1].mean() for c in curves.values())
    top = [c for c in curves.values() if c[:, -1].mean() >= best - 15]
    (lo, hi), zoom = _span(curves.values()), _span(top, 0.08)
    return zoom if len(top) > 1 and 3 * (zoom[1] - zoom[0]) < hi - lo else None


def _end_labels(ax, fig):
    """Each mean line's label at its end, moved apart enough to be read."""
    if not ax.lines:
        return ax.axis('off')
    (lo, hi), box = ax.get_ylim(), ax.get_position()
    ppu = 72 * box.height * fig.get_figheight() / (hi - lo)  # points/unit
    ends = sorted((ln for ln in ax.lines if ln.get_label()[0] != '_'
                   and lo <= ln.get_ydata()[-1] <= hi),
                  key=lambda ln: ln.get_ydata()[-1])
    y = (np.array([ln.get_ydata()[-1] for ln in ends]) - lo) * ppu  # points
    k = 11 * np.arange(len(ends))  # a line of 8-point text apart
    pos = np.maximum.accumulate(np.maximum(y, 5.5) - k) + k
    pos = np.minimum(pos, (hi - lo) * ppu - 5.5 - k[::-1])
    last = ends[0].get_xdata()[-1]
    text = 0.065 * max(len(ln.get_label()) for ln in ends) + 0.3  # inches
    width = box.width * fig.get_figwidth()
    ax.set_xlim(0.7, last + text * (last - 0.7) / max(width - text, 0.5))
    for ln, y0, p in zip(ends, y, pos):
        ax.annotate(ln.get_label(), (last, ln.get_ydata()[-1]), va='center',
                    xytext=(14, p - y0), textcoords='offset points', fontsize=8,
                    color=ln.get_color(), arrowprops=dict(
                        arrowstyle='-', lw=0.5, color=ln.get_color()))


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
