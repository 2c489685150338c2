"""The CLR reference's weight penalty: ``strength`` times the sum of the
un-squared L2 norms of the trainable tensors.

The CLR code (gyhandy/Channel-wise-Lightweight-Reprogramming,
``utils.train``) adds ``1e-5 * sqrt(sum(w ** 2))`` for every tensor it
trains (the head, BatchNorm's affine parameters, the CLR kernels),
skipping tensors whose norm is 0. Per-task banks (the model's
``banked`` leaves, ``[T, ...]``; :mod:`jcl.training.banks`) count with the
current task's row only: a tensor
of the task being learned, as the reference has one model per task;
shared trainable leaves count whole. (The reference's sum also holds the
frozen convolutions wrapped in its CLR blocks: constants that change the
loss's value, not its gradient.)

>>> import jax.numpy as jnp
>>> from jcl.core.records import Forward, TaskCtx
>>> params = {'params': {'w': jnp.full(4, 3.0)},
...           'banks': {'k': jnp.array([[3.0, 4.0], [6.0, 8.0]])}}
>>> labels = lambda p: {'params': {'w': 'frozen'},
...                     'banks': {'k': 'params'}}
>>> banked = lambda p: {'params': {'w': False}, 'banks': {'k': True}}
>>> m = norm_penalty(labels, banked, strength=0.5)
>>> ctx = TaskCtx(jnp.int32(1), None, None)
>>> float(m.loss((), Forward(params, {}, None, {}, {}), ctx)[0]['l2'])
5.0
"""

import jax
import jax.numpy as jnp

from jcl.core.method import Method, make_method
from jcl.core.model import FROZEN


def safe_norm(x):
    """``sqrt(sum(x ** 2))`` with gradient 0 (not NaN) at 0."""
    s = jnp.sum(jnp.square(x))
    pos = s > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, s, 1.0)), 0.0)


def norm_penalty(labels, banked=None, *, strength) -> Method:
    """The penalty as a stateless method with one term, ``'l2'``.

    Args:
      labels: the model's ``labels`` (``params -> tree of group names``,
        ``'frozen'`` leaves are not penalised).
      banked: the model's ``banked`` (``params -> tree of bool``, ``True``
        at per-task banks, whose row ``task_id`` alone counts), or
        ``None``: no banks, every trainable leaf counts whole.
      strength: the factor (the reference: 1e-5; may be a tracer).
    """
    def loss(mstate, fwd, ctx):
        del mstate  # unused
        groups = labels(fwd.params)
        is_bank = (jax.tree.map(lambda _: False, fwd.params)
                   if banked is None else banked(fwd.params))

        def norm(leaf, group, bank):
            if group == FROZEN:
                return 0.0
            return safe_norm(leaf[ctx.task_id] if bank else leaf)
        norms = jax.tree.map(norm, fwd.params, groups, is_bank)
        return {'l2': strength * sum(jax.tree.leaves(norms), 0.0)}

    return make_method(loss=loss)


def first_task_only(part: str, train) -> Method:
    """A gradient stage that lets ``params[part]`` learn during the first
    task only, and not at all when ``train`` is 0 (may be a tracer):
    later gradients are exact zeros, so an optimiser reset at each task
    (Adam's moments at 0) leaves those leaves bit-identical."""
    def grads(mstate, step, ctx):
        del mstate  # unused
        keep = jnp.where((ctx.task_id == 0) & (train > 0), 1.0, 0.0)
        return {**step.grads, part: jax.tree.map(
            lambda g: g * keep, step.grads[part])}

    return make_method(grads=grads)
