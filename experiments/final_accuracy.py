"""Trains a method as ``jcl run`` does, evaluating once at the end.

``jcl run`` scores every task after every task (the R matrix, and for a
Class-IL run a Task-IL view too). For a method whose prediction is costly
(the generative classifier: 10 VAEs x 50 importance samples per test
image) that is ten passes where the NMI code makes one; this script
builds the same learner (the method's own schedule, its defaults, the
seed's ``PRNGKey`` and class order) and scores the final model only.

Usage (from the repository root; PYTHONPATH=. where jcl is installed from
another checkout)::

    python experiments/final_accuracy.py --method gen-classifier --seeds 0 1 2
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from jcl.analysis.evaluate import task_accuracies
from jcl.core import taskdata
from jcl.methods import build_learner, catalog
from jcl.tasks import catalog as tasks
from jcl.training import learner as learner_lib
from jcl.training import task as task_lib
from jcl.training.scoring import scores_fn


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--protocol', default='split-mnist')
    p.add_argument('--scenario', default='class')
    p.add_argument('--method', required=True)
    p.add_argument('--seeds', type=int, nargs='+', default=[0])
    p.add_argument('--class-order', default='shuffled')
    a = p.parse_args()
    spec = tasks.protocol_spec(a.protocol)
    parts = catalog.parse(a.method)
    own = catalog.schedule(parts, spec)
    iters, batch = own.get('iters', spec.iters), own.get('batch', spec.batch)
    arrays = tasks.load_arrays(a.protocol)
    for seed in a.seeds:
        t0 = time.time()
        order = tasks.class_order(a.protocol, a.class_order, seed)
        proto = tasks.load_protocol(a.protocol, a.scenario, arrays=arrays,
                                    class_order=order)
        learner = build_learner(proto, spec, parts, hidden=spec.hidden,
                                iters=iters, batch=batch)
        hp = catalog.default_hparams(parts, lr=own.get('lr', spec.lr),
                                     protocol=a.protocol,
                                     scenario=a.scenario, batch=batch)
        hp = {k: jnp.float32(v) for k, v in hp.items()}
        state = learner_lib.init_state(learner, hp, jax.random.PRNGKey(seed))
        train = taskdata.to_device(proto.train)
        test = taskdata.to_device(proto.test)
        active = jnp.asarray(proto.active)
        step = jax.jit(lambda s, h, d, act, t: task_lib.train_task(
            learner, s, h, d, None, act, t))
        for t in range(proto.num_tasks):
            state, _, _ = step(state, hp, train, active, jnp.int32(t))
        acc = np.asarray(jax.jit(lambda s, h: task_accuracies(
            scores_fn(learner, h, s), test, active[-1],
            learner.prepare))(state, hp))
        print(f'seed {seed}: per task {np.round(100 * acc, 2).tolist()} '
              f'average {100 * acc.mean():.2f}% ({time.time() - t0:.0f} s)',
              flush=True)


if __name__ == '__main__':
    main()
