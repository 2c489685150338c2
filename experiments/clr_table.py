"""The CLR paper's analyses of a finished task-sequence run: one table and
one figure.

For each method of a results folder (``jcl run --protocol
offline-sequence`` or ``image-folders``): the average accuracy after all
tasks, the accuracy on task 1 after each task (the paper's first
analysis, plotted), forgetting (the mean drop from each task's best
accuracy to its final one), the extra parameters each task adds (count,
share of the backbone, float32 bytes; counted from the model, not
assumed) and the training compute relative to SGD (wall seconds per step
of the run, so only meaningful for runs made on the same machine under
the same load).

    python experiments/clr_table.py runs/offline-seq   # clr.md, clr.png

Several folders (e.g. one run per method, made on different cores) are
read as one table, written to ``--out`` (default: the first folder).
"""

import argparse
import json
import os

import numpy as np


def per_task_parameters(cfg, method):
    """(extra trained parameters per task, backbone parameters, bytes
    stored per task)."""
    import jax

    from jcl.models.backbone import resnet_model
    from jcl.tasks import catalog
    spec = catalog.protocol_spec(cfg['protocol'])
    from jcl.methods.backbone_methods import MODE
    mode = MODE.get(method, 'separate' if method == 'separate'
                    else 'finetune')
    tasks = cfg['num_tasks']
    width = spec.num_classes if spec.dataset != 'offline' else 10

    def shapes(mode):
        model = resnet_model(depth=int(spec.backbone[6:]), num_tasks=tasks,
                             head_width=width, mode=mode)
        return jax.eval_shape(model.init, jax.random.PRNGKey(0))[0]

    def count(tree):
        return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))
    params = shapes(mode)
    shared = shapes('finetune')['params']
    backbone = count({k: v for k, v in shared.items()
                      if k not in ('fc_kernel', 'fc_bias')})
    # a shared head (sgd-ll) adds nothing per task; SupSup keeps its
    # trained scores as 1-bit masks
    stored = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(
            params['banks'])[0]:
        n = int(np.prod(leaf.shape)) // tasks
        stored += -(-n // 8) if path[-1].key == 'scores' else 4 * n
    return count(params['banks']) // tasks, backbone, stored


def analyse(*folders):
    """(config of the first folder, table rows, task-1 curves, SGD's s
    per step) of every finished method in ``folders``."""
    rows, curves, cfg = [], {}, None
    for folder in folders:
        cfg_f = json.load(open(os.path.join(folder, 'config.json')))
        if cfg is not None and cfg_f['protocol'] != cfg['protocol']:
            raise SystemExit(f'{folder}: protocol {cfg_f["protocol"]} is '
                             f'not {cfg["protocol"]}')
        cfg = cfg or cfg_f
        _rows(folder, cfg_f, rows, curves)
    base = next((r['per_step'] for r in rows if r['method'] == 'sgd'),
                np.nan)
    return cfg, rows, curves, base


def replay_memory(cfg, method):
    """(examples, bytes) a method's buffer holds after the last task:
    ER's ``per_class`` examples of every class, DER++'s ``budget`` (its
    stored logits too); (0, 0) for a method without one."""
    hp = cfg.get('hparams', {}).get(f'task/{method}', {})
    # stored raw, uint8: the offline tasks are grey 32x32 (their
    # preparation repeats the channel), image folders RGB
    image = (32 * 32 if cfg['protocol'] == 'offline-sequence'
             else cfg.get('image_size', 224) ** 2 * 3)
    tasks, width = cfg['num_tasks'], 10      # the offline tasks' classes
    if 'er.per_class' in hp:
        n = int(hp['er.per_class']) * width * tasks
        return n, n * image
    if 'derpp.budget' in hp:
        n = int(hp['derpp.budget'])
        return n, n * (image + 4 * width * tasks)
    return 0, 0


def _rows(folder, cfg, rows, curves):
    for method in cfg['methods']:
        path = os.path.join(folder, 'runs', method, 'result.npz')
        if not os.path.exists(path):
            continue
        with np.load(path) as f:
            R, seconds = f['R'], f['seconds']
            steps = f['extra/steps'] if 'extra/steps' in f else None
        T = R.shape[1]
        final = R[:, -1].mean(-1)
        best = np.max(np.where(np.tril(np.ones((T, T), bool))[None], R,
                               -np.inf), axis=1)
        forgetting = (best[:, :-1] - R[:, -1, :-1]).mean(-1)
        per_step = (seconds.sum() / steps.sum(-1).mean()
                    if steps is not None else np.nan)
        extra, backbone, stored = per_task_parameters(cfg, method)
        memory = replay_memory(cfg, method)
        curves[method] = R[:, :, 0]
        rows.append(dict(method=method, seeds=R.shape[0],
                         acc=100 * final.mean(), sem=100 * final.std(
                             ddof=1) / np.sqrt(len(final)) if len(final) > 1
                         else 0.0, forgetting=100 * forgetting.mean(),
                         extra=extra, share=100 * extra / backbone,
                         bytes=stored, per_step=per_step, memory=memory,
                         task1=100 * R[:, :, 0].mean(0)))


def write(folder, cfg, rows, curves, base):
    lines = [f"# {cfg['protocol']}: the CLR paper's analyses", '',
             '| method | seeds | avg acc (%) | forgetting (%) | extra '
             'parameters per task | % of the backbone | bytes per task | '
             'replay buffer at the end (examples, MB) | '
             's per step (task wall time, evaluation included) | compute vs '
             'SGD | task 1 after each task (%) |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        rel = r['per_step'] / base if np.isfinite(base) else np.nan
        n, size = r['memory']
        buffer = f'{n:,}, {size / 1e6:.1f}' if n else '–'
        lines.append(
            f"| {r['method']} | {r['seeds']} | {r['acc']:.2f} ± "
            f"{r['sem']:.2f} | {r['forgetting']:.2f} | {r['extra']:,} | "
            f"{r['share']:.2f} | {r['bytes']:,} | {buffer} | "
            f"{r['per_step']:.3f} | "
            f"{rel:.2f} | {' '.join(f'{v:.1f}' for v in r['task1'])} |")
    with open(os.path.join(folder, 'clr.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = plt.get_cmap('tab20')(np.linspace(0, 1, 20))
    for i, (method, c) in enumerate(curves.items()):
        x = np.arange(1, c.shape[1] + 1)
        ax.plot(x, 100 * c.mean(0), marker='o', ms=3, label=method,
                color=colours[i % 20])
    ax.set_xlabel('tasks learned')
    ax.set_ylabel('accuracy on task 1 (%)')
    ax.set_title(f"{cfg['protocol']}: task 1 after each task")
    ax.legend(fontsize=7, ncol=2)
    order = sorted(rows, key=lambda r: r['acc'])
    bx.barh([r['method'] for r in order], [r['acc'] for r in order],
            xerr=[r['sem'] for r in order], color=[
                colours[list(curves).index(r['method']) % 20]
                for r in order])
    bx.set_xlabel('average accuracy after all tasks (%)')
    bx.set_title('mean ± s.e.m. over seeds')
    fig.tight_layout()
    fig.savefig(os.path.join(folder, 'clr.png'), dpi=120)
    print('\n'.join(lines))


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('folders', nargs='+', help='results folders of jcl run')
    p.add_argument('--out', help='where clr.md and clr.png go (default: '
                   'the first folder)')
    a = p.parse_args()
    out = a.out or a.folders[0]
    os.makedirs(out, exist_ok=True)
    write(out, *analyse(*a.folders))


if __name__ == '__main__':
    main()
