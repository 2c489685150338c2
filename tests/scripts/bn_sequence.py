"""A continual run of a BatchNorm conv net with task-end checkpoints
(used by tests/test_checkpoint.py, which kills it and resumes it).

    python tests/scripts/bn_sequence.py OUT_FOLDER
"""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from conftest import synthetic_arrays  # noqa: E402

from jcl.core import tree  # noqa: E402
from jcl.methods import si, supervised  # noqa: E402
from jcl.models import conv_classifier  # noqa: E402
from jcl.sweep.loop import run_seeds  # noqa: E402
from jcl.tasks import protocols  # noqa: E402
from jcl.training.task import Learner  # noqa: E402


def prepare(x):
    return (x.astype(jnp.float32) / 255.0)[..., None]


def main(out):
    proto = protocols.class_split('bn', synthetic_arrays(), 'class',
                                  flatten=False, prepare=prepare)
    learner = Learner(
        lambda hp: conv_classifier((4, 8), hidden=(16,), num_outputs=10,
                                   input_shape=(28, 28, 1)),
        lambda hp, model: jcl_method(model, hp), prepare=prepare,
        num_steps=60, batch_size=16)
    os.makedirs(out, exist_ok=True)
    result = run_seeds(learner, proto, {'lr': np.full(2, 3e-3),
                                        'si.c': np.full(2, 0.1)},
                       jax.random.split(jax.random.PRNGKey(0), 2),
                       ckpt_path=os.path.join(out, 'ckpt.npz'),
                       progress=lambda s: print(s, flush=True))
    state = jax.tree.map(np.asarray, result.state)
    np.savez(os.path.join(out, 'result.npz'), R=result.R,
             loss=result.metrics['loss'],
             **{f'state/{n}': v for n, v in zip(tree.leaf_names(state),
                                                jax.tree.leaves(state))})


def jcl_method(model, hp):
    from jcl.core import combine
    return combine.named_chain(('ce', supervised()),
                               ('si', si(model, c=hp['si.c'])))


if __name__ == '__main__':
    main(sys.argv[1])
