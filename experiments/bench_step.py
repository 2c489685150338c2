"""Time of one training step of any method and protocol, evaluation apart.

Compiles a task of ``--iters`` steps (no evaluation), runs the first
task (no replay yet) and then the second (with replay, a teacher, a
regulariser's anchor: the step of every later task), and reports
compile time apart, milliseconds per step of each, and XLA's FLOP count
of one step (its count of the task's loop, whose body it counts once).
Meant for settings too long to run whole here, e.g. the BI-R paper's
100-permutation MNIST::

    taskset -c 0 python experiments/bench_step.py --threads 1 \\
        --protocol permuted-mnist --scenario domain --method bir \\
        --permutations 100 --hidden 2000,2000 --batch 256 --lr 1e-4

The whole run's training time is then about ``steps per task x tasks x
ms per step`` (evaluation comes on top: after each task every task's
test set).
"""

import argparse
import json
import sys
import time

from one_thread import pin


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--protocol', default='split-mnist')
    p.add_argument('--scenario', default='class')
    p.add_argument('--method', default='bir')
    p.add_argument('--permutations', type=int, default=None)
    p.add_argument('--hidden', default=None)
    p.add_argument('--batch', type=int, default=None)
    p.add_argument('--lr', type=float, default=None)
    p.add_argument('--seeds', type=int, default=1)
    p.add_argument('--iters', type=int, default=50,
                   help='steps per timed task call')
    p.add_argument('--json', default=None)
    return p.parse_args()


ARGS = parse()
pin(ARGS.threads)  # before jax is imported

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jcl.core import taskdata as data_lib  # noqa: E402
from jcl.methods import catalog as method_catalog  # noqa: E402
from jcl.methods.assemble import build_learner  # noqa: E402
from jcl.sweep.rows import compile_run  # noqa: E402
from jcl.tasks import catalog  # noqa: E402


def main():
    spec = catalog.protocol_spec(ARGS.protocol)
    proto = catalog.load_protocol(ARGS.protocol, ARGS.scenario,
                                  num_tasks=ARGS.permutations)
    parts = method_catalog.parse(ARGS.method)
    batch = ARGS.batch or spec.batch
    hidden = (tuple(int(h) for h in ARGS.hidden.split(','))
              if ARGS.hidden else spec.hidden)
    hp = method_catalog.default_hparams(parts, lr=ARGS.lr or spec.lr,
                                  protocol=ARGS.protocol,
                                  scenario=ARGS.scenario, batch=batch)
    learner = build_learner(proto, spec, parts, hidden=hidden,
                                    iters=ARGS.iters, batch=batch,
                                    static_max=hp)
    hpa = {k: jnp.full((ARGS.seeds,), v, jnp.float32) for k, v in hp.items()}
    keys = jnp.stack([jax.random.PRNGKey(s) for s in range(ARGS.seeds)])
    train = data_lib.to_device(proto.train)
    active = jnp.asarray(proto.active)
    init, task, _ = compile_run(learner)
    state = init(hpa, keys)
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    compiled = task.lower(state, hpa, train, None, active,
                          jnp.int32(1)).compile()
    compile_s = time.perf_counter() - t0
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    flops = float(cost.get('flops', float('nan'))) if cost else float('nan')
    ms = []
    for t in range(2):
        t0 = time.perf_counter()
        state, metrics, _ = compiled(state, hpa, train, None, active,
                                     jnp.int32(t))
        jax.block_until_ready(metrics)
        ms.append(1e3 * (time.perf_counter() - t0) / ARGS.iters)
    out = {'protocol': ARGS.protocol, 'scenario': ARGS.scenario,
           'method': ARGS.method, 'tasks': proto.num_tasks,
           'hidden': list(hidden), 'batch': batch, 'seeds': ARGS.seeds,
           'threads': ARGS.threads, 'iters': ARGS.iters,
           'compile_s': compile_s, 'ms_per_step_first_task': ms[0],
           'ms_per_step_later_tasks': ms[1],
           # XLA's cost analysis counts a loop's body once: about one
           # step (plus the task's begin and end)
           'xla_gflop_one_step': flops / 1e9,
           'device': str(jax.devices()[0]), 'jax': jax.__version__}
    print(json.dumps(out, indent=1))
    if ARGS.json:
        with open(ARGS.json, 'w') as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
