"""The core abstraction: a continual-learning method as pure functions.

A :class:`Method` holds no state, like an optax ``GradientTransformation``.
Its state (``mstate``) is a pytree in the training carry, so a frozen
teacher is a :class:`jcl.core.records.Snapshot` inside ``mstate``, taken for
every seed at once under ``vmap``.

Every function takes its arguments in one order: the method's own state
(where it has one), then the record of the stage, then the context::

    init(snap, ctx)                     -> mstate
    loss(mstate, fwd, ctx)              -> (terms, aux)
    grads(mstate, step, ctx)            -> grads     (optional stage)
    update(mstate, step, ctx)           -> mstate
    consolidate(mstate, end, ctx)       -> mstate
    predict(mstate, snap, x, task)      -> scores    (optional override)

>>> import jax.numpy as jnp
>>> def penalty(mstate, fwd, ctx):
...     return {'l2': 1e-3 * jnp.sum(fwd.params['w'] ** 2)}
>>> m = make_method(loss=penalty)
>>> terms, aux = m.loss((), Forward({'w': jnp.ones(3)}, {}, None, {}, {}),
...                     None)
>>> round(float(terms['l2']), 6), aux
(0.003, {})
"""

import zlib
from typing import Callable, NamedTuple, Protocol

import jax

from jcl.core.records import (
    Array,
    Forward,
    PyTree,
    Snapshot,
    Step,
    TaskCtx,
    TaskEnd,
)


class InitFn(Protocol):
    def __call__(self, snap: Snapshot, ctx: TaskCtx) -> PyTree: ...


class LossFn(Protocol):
    def __call__(self, mstate: PyTree, fwd: Forward,
                 ctx: TaskCtx) -> tuple[dict, dict]: ...


class GradsFn(Protocol):
    def __call__(self, mstate: PyTree, step: Step,
                 ctx: TaskCtx) -> PyTree: ...


class UpdateFn(Protocol):
    def __call__(self, mstate: PyTree, step: Step,
                 ctx: TaskCtx) -> PyTree: ...


class ConsolidateFn(Protocol):
    def __call__(self, mstate: PyTree, end: TaskEnd,
                 ctx: TaskCtx) -> PyTree: ...


class PredictFn(Protocol):
    def __call__(self, mstate: PyTree, snap: Snapshot, x: Array,
                 task: Array) -> Array: ...


class Method(NamedTuple):
    """A continual-learning method as pure functions.

    Attributes:
      init: called once before the first task (``ctx.task_id`` is 0).
      loss: ``(terms, aux)``: the step minimises the sum of the ``terms``
        (a dict of scalars, each logged); ``aux`` (a dict of arrays)
        reaches the later members of a chain in ``fwd.aux`` and every
        stage after the backward pass in ``step.aux``.
      grads: a gradient stage, or ``None``: it may change the gradients
        before the optimiser (A-GEM's projection); chain members' stages
        run in chain order.
      update: per-step bookkeeping after the optimiser step (SI's path
        integral, a reservoir buffer).
      consolidate: at the end of each task (EWC's Fisher, SI's omega,
        teacher snapshots).
      predict: a prediction override, or ``None``: ``[B, C]`` scores
        whose arg-max over the active outputs is the prediction
        (iCaRL's nearest mean of exemplars); ``None`` uses the logits.
      replays: its loss has terms on replayed data, which it weighs itself
        (``1 - 1/t`` on task ``t``, :func:`jcl.core.combine.replay_weight`);
        the current-batch objective it is composed with is then weighted
        ``1/t`` (:func:`jcl.methods.compose`).
    """

    init: InitFn
    loss: LossFn
    grads: GradsFn | None
    update: UpdateFn
    consolidate: ConsolidateFn
    predict: PredictFn | None
    replays: bool = False


def member_key(ctx: TaskCtx, name: str):
    """A PRNG key of its own for the part ``name`` of a method: chain
    members share ``ctx.key``, and each draws from
    ``fold_in(ctx.key, crc32(name))`` so that their draws are independent.

    >>> import jax, jax.numpy as jnp
    >>> ctx = TaskCtx(jnp.int32(0), jax.random.PRNGKey(0), None)
    >>> bool((member_key(ctx, 'a') != member_key(ctx, 'b')).any())
    True
    """
    return jax.random.fold_in(ctx.key, zlib.crc32(name.encode()))


def no_state(snap, ctx):
    """``init`` of a stateless method: an empty tuple."""
    del snap, ctx  # unused
    return ()


def keep_state(mstate, record, ctx):
    """``update``/``consolidate`` that leave the state unchanged."""
    del record, ctx  # unused
    return mstate


def no_terms(mstate, fwd, ctx):
    """``loss`` of a method that adds no terms."""
    del mstate, fwd, ctx  # unused
    return {}, {}


def with_aux(loss: Callable) -> LossFn:
    """Lets ``loss`` return a dict of terms alone; ``aux`` is then ``{}``."""
    def wrapped(mstate, fwd, ctx):
        out = loss(mstate, fwd, ctx)
        return out if isinstance(out, tuple) else (out, {})
    return wrapped


def make_method(*, loss=no_terms, init=no_state, update=keep_state,
                consolidate=keep_state, grads=None, predict=None,
                replays=False) -> Method:
    """Builds a :class:`Method`, defaulting the parts it does not need.

    ``loss`` may return the terms alone (a dict) or ``(terms, aux)``.
    """
    return Method(init, with_aux(loss), grads, update, consolidate,
                  predict, replays)


def identity() -> Method:
    """A method with no loss terms and no state (the neutral element)."""
    return make_method()
