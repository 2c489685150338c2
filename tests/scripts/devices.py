"""Runs the same sweep on one device and twice split over all local
devices (tests/test_devices.py starts it with 4 CPU devices) and writes
the three results to an ``.npz``.

    python tests/scripts/devices.py OUT.npz [class-order]
"""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from conftest import synthetic_arrays  # noqa: E402

from jcl.core import tree  # noqa: E402
from jcl.methods import catalog as method_catalog  # noqa: E402
from jcl.methods.assemble import build_learner  # noqa: E402
from jcl.sweep.loop import run_seeds  # noqa: E402
from jcl.sweep.rows import row_mesh  # noqa: E402
from jcl.tasks import (
    catalog,  # noqa: E402
    protocols,  # noqa: E402
)


def main(out, order='fixed'):
    arrays = synthetic_arrays()
    seeds = list(range(6))
    if order == 'shuffled':
        proto = [protocols.class_split(
            's', arrays, 'class',
            class_order=catalog.class_order('split-mnist', 'shuffled', s))
            for s in seeds]
        first = proto[0]
    else:
        proto = first = protocols.class_split('s', arrays, 'class')
    spec = catalog.protocol_spec('split-mnist')
    results = {}
    for method in ('si', 'gr'):
        parts = method_catalog.parse(method)
        hp = method_catalog.default_hparams(parts, lr=1e-3, batch=16)
        learner = build_learner(first, spec, parts, hidden=(16,),
                                        iters=20, batch=16, static_max=hp)
        hpa = {k: np.full(len(seeds), v, np.float32) for k, v in hp.items()}
        hpa['lr'] = np.linspace(1e-3, 3e-3, len(seeds)).astype(np.float32)
        keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
        for name, mesh in (('one', None), ('mesh', row_mesh()),
                           ('again', row_mesh())):
            r = run_seeds(learner, proto, hpa, keys, progress=None,
                          mesh=mesh)
            results[f'{method}/{name}/R'] = r.R
            results[f'{method}/{name}/loss'] = r.metrics['loss']
            state = jax.tree.map(np.asarray, r.state)
            for n, v in zip(tree.leaf_names(state.params),
                            jax.tree.leaves(state.params)):
                results[f'{method}/{name}/params/{n}'] = v
    results['devices'] = np.array(len(jax.devices()))
    np.savez(out, **results)


if __name__ == '__main__':
    main(*sys.argv[1:])
