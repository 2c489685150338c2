"""The CLR reference's weight penalty: ``strength`` times the sum of the
un-squared L2 norms of the trainable tensors.

The CLR code (gyhandy/Channel-wise-Lightweight-Reprogramming,
``utils.train``) adds ``1e-5 * sqrt(sum(w ** 2))`` for every tensor it
trains (the head, BatchNorm's affine parameters, the CLR kernels),
skipping tensors whose norm is 0. Per-task banks (``params['banks']``,
leaves ``[T, ...]``) count with the current task's slice only: a tensor
of the task being learned, as the reference has one model per task;
shared trainable leaves count whole. (The reference's sum also holds the
frozen convolutions wrapped in its CLR blocks: constants that change the
loss's value, not its gradient.)

>>> import jax.numpy as jnp
>>> from jcl.types import Forward, TaskCtx
>>> params = {'params': {'w': jnp.full(4, 3.0)},
...           'banks': {'k': jnp.array([[3.0, 4.0], [6.0, 8.0]])}}
>>> labels = lambda p: {'params': {'w': 'frozen'},
...                     'banks': {'k': 'params'}}
>>> m = norm_penalty(labels, strength=0.5)
>>> ctx = TaskCtx(jnp.int32(1), None, None)
>>> float(m.loss((), Forward(params, {}, None, {}, {}), ctx)[0]['l2'])
5.0
"""

import jax
import jax.numpy as jnp

from jcl.method import Method, make_method
from jcl.model import FROZEN


def safe_norm(x):
    """``sqrt(sum(x ** 2))`` with gradient 0 (not NaN) at 0."""
    s = jnp.sum(jnp.square(x))
    pos = s > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, s, 1.0)), 0.0)


def norm_penalty(labels, *, strength) -> Method:
    """The penalty as a stateless method with one term, ``'l2'``.

    Args:
      labels: the model's ``labels`` (``params -> tree of group names``,
        ``'frozen'`` leaves are not penalised).
      strength: the factor (the reference: 1e-5; may be a tracer).
    """
    def loss(mstate, fwd, ctx):
        del mstate  # unused
        groups = labels(fwd.params)
        total = 0.0
        for top, sub in fwd.params.items():
            is_bank = top == 'banks'
            for leaf, group in zip(jax.tree.leaves(sub),
                                   jax.tree.leaves(groups[top])):
                if group == FROZEN:
                    continue
                total = total + safe_norm(leaf[ctx.task_id] if is_bank
                                          else leaf)
        return {'l2': strength * total}

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
