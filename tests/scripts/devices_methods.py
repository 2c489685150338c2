"""Runs each method named on the command line on one device and split
over all local devices (tests/methods/test_methods_on_devices.py starts
it with 4 CPU devices), 6 rows of different learning rates padded to 8,
and writes the results to an ``.npz``.

    python tests/scripts/devices_methods.py OUT.npz METHOD [METHOD ...]
"""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from conftest import synthetic_arrays  # noqa: E402

from jcl.methods import catalog as method_catalog  # noqa: E402
from jcl.methods.assemble import build_learner  # noqa: E402
from jcl.sweep.loop import run_seeds  # noqa: E402
from jcl.sweep.rows import row_mesh  # noqa: E402
from jcl.tasks import catalog, protocols  # noqa: E402

# small stand-ins for the settings that size a run (buffers, GDumb's
# epochs, HAL's anchor steps, the generative classifier's samples)
SMALL = {'der.budget': 40, 'er-ace.budget': 40, 'fdr.budget': 40,
         'fdr.minibatch': 16, 'gdumb.budget': 40, 'gdumb.epochs': 2,
         'gem.budget': 40, 'gss.budget': 40, 'hal.budget': 40,
         'hal.minibatch': 16, 'hal.anchor_steps': 3, 'fromp.per_class': 4,
         'gen-classifier.samples': 4, 'gen-classifier.class_batch': 8}


def main(out, *methods):
    arrays = synthetic_arrays(n_train=300, n_test=200)
    proto = protocols.class_split('s', arrays, 'class')
    spec = catalog.protocol_spec('split-mnist')
    rows = 6
    results = {'devices': np.array(len(jax.devices()))}
    for method in methods:
        parts = method_catalog.parse(method)
        hp = method_catalog.default_hparams(parts, lr=1e-3, batch=16)
        hp.update({k: v for k, v in SMALL.items() if k in hp})
        learner = build_learner(proto, spec, parts, hidden=(16,), iters=8,
                                batch=16, static_max=hp, gen_hidden=(16,))
        hpa = {k: np.full(rows, v, np.float32) for k, v in hp.items()}
        hpa['lr'] = np.linspace(1e-3, 3e-3, rows).astype(np.float32)
        keys = jnp.stack([jax.random.PRNGKey(s) for s in range(rows)])
        for name, mesh in (('one', None), ('mesh', row_mesh())):
            r = run_seeds(learner, proto, hpa, keys, progress=None,
                          mesh=mesh)
            results[f'{method}/{name}/R'] = r.R
            results[f'{method}/{name}/params'] = np.concatenate([
                np.asarray(a).reshape(rows, -1)
                for a in jax.tree.leaves(r.state.params)], 1)
    np.savez(out, **results)


if __name__ == '__main__':
    main(*sys.argv[1:])
