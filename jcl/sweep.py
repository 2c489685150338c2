"""Seeds and hyperparameter points as one ``vmap`` axis ("rows").

:func:`compile_run` maps a learner's compiled functions over the leading
axis of the hyperparameters, the PRNG keys and the carry: every row (a
seed, a grid point) trains in the same program, and a per-seed task order
stacks its index tables on the same axis.

>>> import jax, jax.numpy as jnp
>>> from jcl.methods import supervised
>>> from jcl.models import mlp_classifier
>>> from jcl.learner import Learner
>>> learner = Learner(lambda hp: mlp_classifier((4,), num_outputs=2,
...                                             input_dim=3),
...                   lambda hp, model: supervised(), num_steps=2,
...                   batch_size=2)
>>> init, task, init_acc = compile_run(learner)
>>> states = init({'lr': jnp.full(3, 1e-3)},
...               jax.random.split(jax.random.PRNGKey(0), 3))
>>> states.params['Dense_0']['kernel'].shape       # 3 rows
(3, 3, 4)
"""

import functools

import jax

from jcl.learner import Learner, init_state
from jcl.train import initial_accuracy, train_task


def compile_run(learner: Learner, *, train_axes=None, test_axes=None):
    """Builds the jitted, seed-vmapped functions of one learner.

    Args:
      learner: the static learner.
      train_axes, test_axes: ``vmap`` axes of the data (``None``: the data
        is shared by all seeds; a per-seed class order stacks index tables
        on axis 0).

    Returns:
      ``(init, task, init_acc)``: ``init(hp, keys)``,
      ``task(states, hp, train, test, active, task_id)`` (donates
      ``states``), ``init_acc(states, hp, test, active)``; every function
      maps over the leading axis of ``hp``/``keys``/``states``.
    """
    init = jax.jit(jax.vmap(functools.partial(init_state, learner)))
    task = jax.jit(jax.vmap(functools.partial(train_task, learner),
                            in_axes=(0, 0, train_axes, test_axes, None,
                                     None)),
                   donate_argnums=0)
    init_acc = jax.jit(jax.vmap(functools.partial(initial_accuracy,
                                                  learner),
                                in_axes=(0, 0, test_axes, None)))
    return init, task, init_acc
