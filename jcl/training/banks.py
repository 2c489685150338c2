"""Training only the current task's rows of per-task banks.

A model may keep *banks*: leaves with a leading task axis whose row ``t``
only task ``t``'s examples use (:attr:`jcl.core.model.Model.banked`), e.g.
CLR's kernels and per-task BatchNorm, SupSup's scores, or a whole
network per task (``separate``). While a method whose losses see only the
current task's examples trains task ``t``, every other row's gradient is
exactly zero, and with the optimiser reset at each task start its Adam
moments and updates are exactly zero too: the other rows never move.
Differentiating and optimising whole banks still costs a full-size
gradient, two full-size moments and a full-size update per step; for a
network per task that is gigabytes.

With ``Learner.bank_slices`` the step instead takes row ``task_id`` of
every banked trainable leaf (:func:`take`), differentiates and optimises
that slice (the optimiser state is slice-sized), and writes it back
(:func:`put`); the numbers equal the whole-bank step's (tested), and
the other rows are not touched. The gradient a method's ``grads`` stage
and ``update`` see is slice-shaped at banked leaves.

>>> import jax.numpy as jnp
>>> params = {'w': jnp.ones(2), 'bank': jnp.zeros((3, 2))}
>>> banked = {'w': False, 'bank': True}
>>> part = take(params, banked, 1)
>>> part['bank'].shape
(2,)
>>> put(params, {'w': part['w'], 'bank': part['bank'] + 5}, banked,
...     1)['bank'].tolist()
[[0.0, 0.0], [5.0, 5.0], [0.0, 0.0]]
"""

import jax

from jcl.core.errors import ConfigError


def _none(x):
    return x is None


def banked_mask(model, params):
    """The model's per-task banks as a tree of bools like ``params``, or
    ``None`` if it has none (then nothing is sliced)."""
    if model.banked is None:
        return None
    return model.banked(params)


def take(tree, banked, task_id):
    """Row ``task_id`` of every banked leaf of ``tree`` (other leaves and
    ``None`` holes as they are)."""
    if banked is None:
        return tree

    def one(a, b):
        if a is None or not b:
            return a
        return jax.lax.dynamic_index_in_dim(a, task_id, 0, keepdims=False)
    return jax.tree.map(one, tree, banked, is_leaf=_none)


def put(full, part, banked, task_id):
    """``part`` with each banked leaf written into row ``task_id`` of
    ``full``'s leaf (the inverse of :func:`take`)."""
    if banked is None:
        return part

    def one(a, p, b):
        if p is None or not b:
            return p
        return jax.lax.dynamic_update_index_in_dim(a, p, task_id, 0)
    return jax.tree.map(one, full, part, banked, is_leaf=_none)


def check(learner):
    """Raises :class:`ConfigError` if ``learner`` slices banks without
    resetting the optimiser at every task (a slice's moments would then
    carry over to the next task's row)."""
    if learner.bank_slices and not (learner.reset_optimizer
                                    or learner.reinit):
        raise ConfigError('training one task\'s bank rows (bank_slices) '
                          'needs the optimiser reset at every task '
                          '(reset_optimizer)')
