"""Combinators of methods, mirroring optax's ``chain`` and friends.

>>> import jax.numpy as jnp
>>> from jcl.core.method import make_method
>>> from jcl.core.records import TaskCtx
>>> a = make_method(loss=lambda s, fwd, ctx: {'loss': jnp.float32(2.)})
>>> b = make_method(loss=lambda s, fwd, ctx: {'loss': jnp.float32(4.)})
>>> m = replay_weighted(current=[('ce', a)], replay=[('lwf', b)])
>>> ctx = TaskCtx(jnp.int32(1), None, None)           # the second task
>>> terms, _ = m.loss(m.init(None, ctx), None, ctx)
>>> {k: float(v) for k, v in terms.items()}
{'ce/loss': 1.0, 'lwf/loss': 2.0}
"""

from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from jcl.core.method import Method


def named_chain(*named: tuple[str, Method]) -> Method:
    """Combines methods; state is a dict, loss terms are prefixed ``name/``.

    Members run in order. Each member's ``loss`` sees the ``aux`` outputs
    of the members before it in ``fwd.aux[name]``; gradient stages run in
    order, each on the gradients the one before returned; at most one
    member may override prediction.

    Args:
      *named: ``(name, method)`` pairs; names must be unique.

    Returns:
      A method whose state is ``{name: member_state}``, whose loss dict
      holds every member term as ``'name/term'``, whose ``aux`` is
      ``{name: member_aux}``, and which replays if a member does.
    """
    names = [n for n, _ in named]
    if len(set(names)) != len(names):
        raise ValueError(f'duplicate names in named_chain: {names}')
    predictors = [(n, m.predict) for n, m in named if m.predict is not None]
    if len(predictors) > 1:
        raise ValueError('at most one member may override prediction; '
                         f'{", ".join(n for n, _ in predictors)} do')
    stages = [(n, m.grads) for n, m in named if m.grads is not None]

    def init(snap, ctx):
        return {n: m.init(snap, ctx) for n, m in named}

    def loss(mstate, fwd, ctx):
        terms, aux = {}, {}
        for n, m in named:
            member_fwd = fwd if fwd is None else fwd._replace(aux=dict(aux))
            t, a = m.loss(mstate[n], member_fwd, ctx)
            for k, v in t.items():
                terms[f'{n}/{k}'] = v
            aux[n] = a
        return terms, aux

    def grads(mstate, step, ctx):
        for n, stage in stages:
            step = step._replace(grads=stage(mstate[n], step, ctx))
        return step.grads

    def update(mstate, step, ctx):
        return {n: m.update(mstate[n], step, ctx) for n, m in named}

    def consolidate(mstate, end, ctx):
        return {n: m.consolidate(mstate[n], end, ctx) for n, m in named}

    predict = None
    if predictors:
        name, fn = predictors[0]

        def predict(mstate, snap, x, task):
            return fn(mstate[name], snap, x, task)

    return Method(init, loss, grads if stages else None, update,
                  consolidate, predict, any(m.replays for _, m in named))


def chain(*methods: Method) -> Method:
    """Like :func:`named_chain` with names ``'0', '1', ...``.

    The state is a dict keyed by position (so it checkpoints by name).
    """
    return named_chain(*((str(i), m) for i, m in enumerate(methods)))


def scale(method: Method, weight: float | Callable) -> Method:
    """Multiplies every loss term of ``method`` by ``weight``.

    A weight known to be 0 while tracing (a Python ``0``, or a schedule's
    value on the first task's own program, where ``ctx.task_id`` is the
    Python ``0``) leaves ``method``'s loss out of the program: its terms
    (and ``aux``) are zeros of their shapes, nothing of it is computed.

    Args:
      method: the method to scale.
      weight: a constant, or a function ``task_id -> weight`` (a task
        schedule, e.g. :func:`current_weight`).
    """
    def loss(mstate, fwd, ctx):
        w = weight(ctx.task_id) if callable(weight) else weight
        if isinstance(w, (int, float)) and w == 0:
            shapes = jax.eval_shape(
                lambda ms, f, key, active: method.loss(
                    ms, f, ctx._replace(key=key, active=active)),
                mstate, fwd, ctx.key, ctx.active)
            return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                                shapes)
        terms, aux = method.loss(mstate, fwd, ctx)
        return {k: w * v for k, v in terms.items()}, aux

    return method._replace(loss=loss)


def current_weight(task_id):
    """``1/t`` on task ``t = task_id + 1``: the current-data weight (a
    Python float for a Python ``task_id``)."""
    if isinstance(task_id, int):
        return 1.0 / (task_id + 1)
    return 1.0 / (jnp.asarray(task_id, jnp.float32) + 1.0)


def replay_weight(task_id):
    """``1 - 1/t`` on task ``t = task_id + 1``: the replayed-data weight."""
    return 1.0 - current_weight(task_id)


def replayed(method: Method) -> Method:
    """``method``'s terms as terms on replayed data: weighted ``1 - 1/t``
    on task ``t`` (:func:`replay_weight`), and marked ``replays`` so that
    the current-batch objective composed with it is weighted ``1/t``
    (:func:`jcl.methods.compose`).

    >>> from jcl.core.method import make_method
    >>> from jcl.core.records import TaskCtx
    >>> m = replayed(make_method(loss=lambda s, f, c: {'kd': 4.0}))
    >>> m.replays, float(m.loss((), None, TaskCtx(3, None, None))[0]['kd'])
    (True, 3.0)
    """
    return scale(method, replay_weight)._replace(replays=True)


def replay_weighted(*, current: Sequence[tuple[str, Method]],
                    replay: Sequence[tuple[str, Method]] = (),
                    other: Sequence[tuple[str, Method]] = ()) -> Method:
    """``(1/t) L_current + (1 - 1/t) L_replay + L_other`` on task ``t``.

    The weighting of the BI-R paper's protocol: each step combines a
    current and a replayed minibatch of the same size, weighted by how
    many tasks the replay stands for. Here the members give unweighted
    losses on replayed data; penalties (EWC, SI) go to ``other``. Without
    replay members the current terms are not weighted. (jcl's own replay
    methods weigh themselves, :func:`replayed`, and meet the cross-entropy
    in :func:`jcl.methods.compose`.)

    Args:
      current: ``(name, method)`` members whose terms are on current data.
      replay: members whose terms are on replayed data.
      other: members left unweighted.

    Returns:
      A :func:`named_chain` of all members, in the order current, replay,
      other.
    """
    if replay:
        current = [(n, scale(m, current_weight)) for n, m in current]
        replay = [(n, scale(m, replay_weight)) for n, m in replay]
    return named_chain(*current, *replay, *other)


def masked(method: Method, select: Callable) -> Method:
    """Restricts a method to a subtree of the parameters.

    ``select(params) -> subtree`` picks the part the method sees (e.g.
    ``lambda p: p['classifier']``). Its loss, update and consolidation see
    only that subtree; gradients are selected the same way.
    """
    if method.grads is not None:
        raise ValueError('masked: a method with a gradient stage cannot be '
                         'restricted to a subtree')

    def init(snap, ctx):
        return method.init(snap._replace(params=select(snap.params)), ctx)

    def loss(mstate, fwd, ctx):
        return method.loss(mstate, fwd._replace(params=select(fwd.params)),
                           ctx)

    def on_step(step):
        return step._replace(params=select(step.params),
                             new_params=select(step.new_params),
                             grads=select(step.grads))

    def update(mstate, step, ctx):
        return method.update(mstate, on_step(step), ctx)

    def consolidate(mstate, end, ctx):
        return method.consolidate(
            mstate, end.replace(params=select(end.params)), ctx)

    return Method(init, loss, method.grads, update, consolidate,
                  method.predict, method.replays)
