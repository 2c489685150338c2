"""Rows (seeds) per second on whatever devices are present.

For each method and each number of vmapped seeds, trains split MNIST
Class-IL (the paper's network, batch 128) through all five tasks with the
rows split over every local device (``jcl.sweep.rows.mesh_for``), and reports
the compile time apart from the training time:

    rows/s = seeds / (time of the five compiled task calls: training
    and each task's evaluation on the test set)

Usage::

    python experiments/bench_rows.py --methods none,gr \\
        --seeds 1,4,16,64,256,1024 --iters 2000 --json rows.json
    # fewer iterations on a CPU (the per-step cost does not depend on it)
    python experiments/bench_rows.py --iters 100 --seeds 1,8,64

A configuration that runs out of memory is reported as such and the
larger ones of that method are skipped.
"""

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jcl.core import taskdata as data_lib
from jcl.methods import catalog as method_catalog
from jcl.methods.assemble import build_learner
from jcl.sweep.rows import compile_run, mesh_for, padded_rows, place
from jcl.tasks import catalog


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--methods', default='none,gr')
    p.add_argument('--seeds', default='1,4,16,64,256,1024')
    p.add_argument('--iters', type=int, default=2000,
                   help='iterations per task (the paper: 2000)')
    p.add_argument('--devices', type=int, default=None,
                   help='local devices to use (default: all)')
    p.add_argument('--json', default=None)
    return p.parse_args(argv)


def bench(proto, method, seeds, iters, mesh):
    parts = method_catalog.parse(method)
    hp = method_catalog.default_hparams(parts, lr=1e-3)
    learner = build_learner(
        proto, catalog.protocol_spec('split-mnist'), parts,
        hidden=(400, 400), iters=iters, batch=128, static_max=hp)
    rows = padded_rows(seeds, mesh)
    hp = place({k: jnp.full((rows,), v, jnp.float32)
                for k, v in hp.items()}, mesh, 'rows')
    keys = place(jnp.stack([jax.random.PRNGKey(s % seeds)
                            for s in range(rows)]), mesh, 'rows')
    train = place(data_lib.to_device(proto.train), mesh)
    test = place(data_lib.to_device(proto.test), mesh)
    active = place(jnp.asarray(proto.active), mesh)
    t0 = time.perf_counter()
    init, task, _ = compile_run(learner, mesh=mesh)
    state = init(hp, keys)
    compiled = task.lower(state, hp, train, test, active,
                          jnp.int32(0)).compile()
    compile_s = time.perf_counter() - t0
    times = []
    for t in range(proto.num_tasks):
        t1 = time.perf_counter()
        state, _, acc = compiled(state, hp, train, test, active,
                                 jnp.int32(t))
        jax.block_until_ready(acc)
        times.append(time.perf_counter() - t1)
    acc = np.asarray(acc)[:seeds]
    return {'method': method, 'seeds': seeds, 'rows': rows,
            'compile_s': compile_s, 'train_s': sum(times),
            'first_task_s': times[0],
            'rows_per_s': seeds / sum(times),
            'seed_steps_per_s': seeds * iters * proto.num_tasks /
            sum(times),
            'final_avg_acc': float(acc.mean())}


def main(argv=None):
    args = parse(argv)
    mesh = mesh_for(args.devices)
    ndev = 1 if mesh is None else mesh.devices.size
    device = f'{ndev} x {jax.devices()[0].device_kind}'
    proto = catalog.load_protocol('split-mnist', 'class')
    print(f'{device}, jax {jax.__version__}, {args.iters} iterations/task',
          flush=True)
    print('| method | seeds | compile s | 5 tasks s (train+eval) | rows/s '
          '| seed-steps/s | final acc |')
    print('|---|---|---|---|---|---|---|')
    out = []
    for method in args.methods.split(','):
        for s in map(int, args.seeds.split(',')):
            try:
                r = bench(proto, method, s, args.iters, mesh)
            except Exception as e:  # noqa: BLE001 (memory: report, go on)
                if 'RESOURCE_EXHAUSTED' not in str(e) and \
                        'memory' not in str(e).lower():
                    raise
                print(f'| {method} | {s} | out of memory | | | | |',
                      flush=True)
                break
            out.append(r)
            print(f"| {method} | {s} | {r['compile_s']:.1f} | "
                  f"{r['train_s']:.1f} | {r['rows_per_s']:.3g} | "
                  f"{r['seed_steps_per_s']:.3g} | "
                  f"{100 * r['final_avg_acc']:.2f} |", flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'device': device, 'devices': ndev,
                       'iters': args.iters, 'jax': jax.__version__,
                       'runs': out}, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
