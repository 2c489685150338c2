"""The core abstraction: a continual-learning method as pure functions.

A :class:`Method` holds no state, like an optax ``GradientTransformation``.
Its state (``mstate``) is a pytree that lives in the training carry, so a
frozen teacher is a snapshot of ``params`` inside ``mstate`` and is taken
for every seed at once under ``vmap``.

Example::

    import jcl
    method = jcl.named_chain(('ce', jcl.methods.supervised(classify)),
                             ('si', jcl.methods.si(c=1.0)))
    mstate = method.init(params, key)
    terms = method.loss(params, mstate, batch, ctx)   # {'ce/loss': ...}
"""

from typing import Callable, NamedTuple

from jcl.types import Batch, Params, PRNGKey, PyTree, TaskCtx


class Method(NamedTuple):
    """A continual-learning method as five pure functions.

    Attributes:
      init: ``(params, key) -> mstate``, called once before the first task.
      loss: ``(params, mstate, batch, ctx) -> dict[str, scalar]``; the
        training step minimises the sum of the terms and logs each one.
      update: ``(mstate, params, grads, new_params, ctx) -> mstate``,
        per-step bookkeeping after the optimiser step (SI's path integral).
      consolidate: ``(mstate, params, data, ctx) -> mstate``, at the end of
        each task (EWC's Fisher, SI's omega, teacher snapshots). ``data`` is
        the :class:`jcl.data.TaskData` being trained on.
      extend_params: ``(params, key) -> params``, lets a method bring
        parameters of its own before training (a generator, XdG gates).
    """

    init: Callable[[Params, PRNGKey], PyTree]
    loss: Callable[[Params, PyTree, Batch, TaskCtx], dict]
    update: Callable
    consolidate: Callable
    extend_params: Callable[[Params, PRNGKey], Params]


def no_state(params, key):
    """``init`` of a stateless method: an empty tuple."""
    del params, key  # unused
    return ()


def keep_state(mstate, *args):
    """``update``/``consolidate`` that leave the state unchanged."""
    del args  # unused
    return mstate


def keep_params(params, key):
    """``extend_params`` that adds nothing."""
    del key  # unused
    return params


def make_method(*, loss, init=no_state, update=keep_state,
                consolidate=keep_state, extend_params=keep_params) -> Method:
    """Builds a :class:`Method`, defaulting the parts a method does not need.

    Example::

        m = make_method(loss=lambda p, s, b, c: {'loss': 0.0})
    """
    return Method(init, loss, update, consolidate, extend_params)


def identity() -> Method:
    """A method with no loss terms and no state (the neutral element)."""
    return make_method(loss=lambda params, mstate, batch, ctx: {})
