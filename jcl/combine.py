"""Combinators of methods, mirroring optax's ``chain`` and friends.

Example::

    bir_si = named_chain(('ce', scale(supervised(f), current_weight)),
                         ('si', si(c=0.1)))
"""

from typing import Callable

import jax.numpy as jnp

from jcl.base import Method, make_method


def named_chain(*named: tuple[str, Method]) -> Method:
    """Combines methods; state is a dict, loss terms are prefixed ``name/``.

    Args:
      *named: ``(name, method)`` pairs; names must be unique.

    Returns:
      A method whose state is ``{name: member_state}`` and whose loss dict
      holds every member term as ``'name/term'``.
    """
    names = [n for n, _ in named]
    if len(set(names)) != len(names):
        raise ValueError(f'duplicate names in named_chain: {names}')

    def init(params, key):
        return {n: m.init(params, key) for n, m in named}

    def loss(params, mstate, batch, ctx):
        out = {}
        for n, m in named:
            for k, v in m.loss(params, mstate[n], batch, ctx).items():
                out[f'{n}/{k}'] = v
        return out

    def update(mstate, params, grads, new_params, ctx):
        return {n: m.update(mstate[n], params, grads, new_params, ctx)
                for n, m in named}

    def consolidate(mstate, params, data, ctx):
        return {n: m.consolidate(mstate[n], params, data, ctx)
                for n, m in named}

    def extend_params(params, key):
        for i, (_, m) in enumerate(named):
            params = m.extend_params(params, _fold(key, i))
        return params

    return Method(init, loss, update, consolidate, extend_params)


def chain(*methods: Method) -> Method:
    """Like :func:`named_chain` with names ``'0', '1', ...``.

    The state is a dict keyed by position (so it checkpoints by name).
    """
    return named_chain(*((str(i), m) for i, m in enumerate(methods)))


def scale(method: Method, weight: float | Callable) -> Method:
    """Multiplies every loss term of ``method`` by ``weight``.

    Args:
      method: the method to scale.
      weight: a constant, or a function ``task_id -> weight`` (a task
        schedule, e.g. :func:`current_weight`).
    """
    def loss(params, mstate, batch, ctx):
        w = weight(ctx.task_id) if callable(weight) else weight
        return {k: w * v for k, v in
                method.loss(params, mstate, batch, ctx).items()}

    return method._replace(loss=loss)


def current_weight(task_id):
    """``1/t`` on task ``t = task_id + 1``: the current-data weight."""
    return 1.0 / (jnp.asarray(task_id, jnp.float32) + 1.0)


def replay_weight(task_id):
    """``1 - 1/t`` on task ``t = task_id + 1``: the replayed-data weight."""
    return 1.0 - current_weight(task_id)


def masked(method: Method, select: Callable) -> Method:
    """Restricts a method to a subtree of the parameters.

    ``select(params) -> subtree`` picks the part the method sees (e.g.
    ``lambda p: p['classifier']``). Its loss, update and consolidation see
    only that subtree; gradients are selected the same way.
    """
    def init(params, key):
        return method.init(select(params), key)

    def loss(params, mstate, batch, ctx):
        return method.loss(select(params), mstate, batch, ctx)

    def update(mstate, params, grads, new_params, ctx):
        return method.update(mstate, select(params), select(grads),
                             select(new_params), ctx)

    def consolidate(mstate, params, data, ctx):
        return method.consolidate(mstate, select(params), data, ctx)

    return make_method(init=init, loss=loss, update=update,
                       consolidate=consolidate,
                       extend_params=method.extend_params)


def _fold(key, i):
    import jax
    return jax.random.fold_in(key, i)
