"""What the generator replays: a grid of samples per class after each task.

Trains BI-R (or GR, RtF: any generative replay method of `jcl run`) on a
protocol, one seed, and after every task decodes samples of every class
seen so far from the model (a class's prior mode and gate where the model
has them; otherwise unconditional samples), saving one PNG per task: rows
are classes, columns samples.

Usage::

    python experiments/bir_samples.py --method bir --out runs/bir-samples
    python experiments/bir_samples.py --method gr --iters 500 --out runs/gr
    python experiments/bir_samples.py --method gr --gen-hidden 10,10 \
        --out runs/gr10

(``--gen-hidden 10,10`` / ``100,100`` / ``1000,1000`` with ``--method gr``
gives the BI-R paper's Fig. 4c: what a small, a middle and a large VAE
replay.)

Writes ``samples-task{t}.png`` and ``samples.png`` (all tasks side by
side) in --out.
"""

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--protocol', default='split-mnist')
    p.add_argument('--scenario', default='class')
    p.add_argument('--method', default='bir')
    p.add_argument('--iters', type=int, default=None)
    p.add_argument('--gen-hidden', default=None, metavar='H1,H2,...',
                   help="the generator's hidden units (as `jcl run`)")
    p.add_argument('--per-class', type=int, default=8)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', required=True)
    return p.parse_args()


def save_grid(images, path, side=28):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    c, n = images.shape[:2]
    grid = images.reshape(c, n, side, side).transpose(0, 2, 1, 3).reshape(
        c * side, n * side)
    plt.imsave(path, grid, cmap='gray', vmin=0, vmax=1)


def each_task(protocol, scenario, method, iters=None, seed=0,
              gen_hidden=None):
    """Trains ``method`` (one seed) task by task; yields ``(t, proto,
    model, hp, state, acc)`` after each task, ``state`` the seed's carry
    and ``acc`` its accuracies on every task's test set. ``gen_hidden``:
    the generator's hidden units (a tuple), or ``None`` for the
    protocol's."""
    from jcl.core import taskdata as data_lib
    from jcl.methods import catalog as method_catalog
    from jcl.methods.assemble import build_learner
    from jcl.sweep.rows import compile_run
    from jcl.tasks import catalog
    spec = catalog.protocol_spec(protocol)
    proto = catalog.load_protocol(protocol, scenario)
    parts = method_catalog.parse(method)
    hp = method_catalog.default_hparams(parts, lr=spec.lr, protocol=protocol,
                                  scenario=scenario, batch=spec.batch)
    learner = build_learner(
        proto, spec, parts, hidden=spec.hidden, iters=iters or spec.iters,
        batch=spec.batch, static_max=hp, gen_hidden=gen_hidden)
    hpa = {k: jnp.full((1,), v, jnp.float32) for k, v in hp.items()}
    init, task, _ = compile_run(learner)
    state = init(hpa, jax.random.PRNGKey(seed)[None])
    train = data_lib.to_device(proto.train)
    test = data_lib.to_device(proto.test)
    active = jnp.asarray(proto.active)
    model = learner.make_model(hp)
    for t in range(proto.num_tasks):
        state, _, acc = task(state, hpa, train, test, active, jnp.int32(t))
        yield (t, proto, model, hp, jax.tree.map(lambda a: a[0], state),
               np.asarray(acc)[0])


def main():
    from jcl.analysis import quality
    args = parse()
    os.makedirs(args.out, exist_ok=True)
    gen_hidden = (None if args.gen_hidden is None else
                  tuple(int(h) for h in args.gen_hidden.split(',')))
    grids = []
    for t, proto, model, hp, one, acc in each_task(
            args.protocol, args.scenario, args.method, args.iters,
            args.seed, gen_hidden):
        side = int(round(np.sqrt(proto.input_shape[0])))
        classes = np.flatnonzero(np.asarray(proto.active)[t, t])
        task_gates = hp.get('bir.task_gates', 0) > 0
        imgs = np.asarray(quality.class_samples(
            model, one.params, one.model_state, jax.random.PRNGKey(100 + t),
            classes, args.per_class,
            lambda c: c // proto.classes_per_task if task_gates else c))
        save_grid(imgs, os.path.join(args.out, f'samples-task{t + 1}.png'),
                  side)
        grids.append(imgs)
        print(f'task {t + 1}: accuracy {100 * acc[:t + 1].mean():.2f}%, '
              f'{len(classes)} classes sampled', flush=True)
    # all tasks side by side, rows = classes (missing classes blank)
    c = max(g.shape[0] for g in grids)
    full = np.zeros((c, 0) + grids[0].shape[2:])
    for g in grids:
        pad = np.zeros((c - g.shape[0],) + g.shape[1:])
        full = np.concatenate([full, np.concatenate([g, pad])], 1)
    save_grid(full, os.path.join(args.out, 'samples.png'), side)
    return 0


if __name__ == '__main__':
    sys.exit(main())
