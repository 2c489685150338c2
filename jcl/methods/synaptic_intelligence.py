"""Synaptic intelligence (Zenke et al. 2017).

During a task each parameter accumulates its contribution to the decrease
of the loss, ``W += -g * delta_theta`` after every optimiser step. At the
task's end ``Omega += W / (Delta**2 + xi)`` with ``Delta`` the parameter's
change over the task, and ``c * sum Omega (theta - theta*)**2`` keeps later
tasks near ``theta*``, the parameters at the end of the last task.

>>> import jax, jax.numpy as jnp
>>> from jcl.models import mlp_classifier
>>> from jcl.core.records import Forward, Snapshot, TaskCtx
>>> clf = mlp_classifier((4,), num_outputs=2, input_dim=3)
>>> params, state = clf.init(jax.random.PRNGKey(0))
>>> m = si(clf, c=10.0)
>>> ctx = TaskCtx(jnp.int32(0), None, None)
>>> mstate = m.init(Snapshot(params, state), ctx)
>>> sorted(mstate._fields)
['anchor', 'omega', 'path', 'start']
"""

from collections.abc import Callable
from typing import NamedTuple

import jax

from jcl.core import tree
from jcl.core.method import Method, make_method
from jcl.core.model import Model, trainable_part
from jcl.core.records import PyTree
from jcl.methods.entry import (
    NONNEG,
    POSITIVE,
    MethodEntry,
    by_protocol,
    default_of,
)


class SIState(NamedTuple):
    """SI's state; every field is a tree like the regularised parameters.

    Attributes:
      anchor: ``theta*``, the parameters at the end of the last task (the
        initial parameters before the first).
      omega: ``Omega``, the accumulated importance (zeros at first).
      path: ``W``, this task's running path integral ``sum -g * dtheta``.
      start: the parameters at the start of this task.
    """

    anchor: PyTree
    omega: PyTree
    path: PyTree
    start: PyTree


def si(model: Model, *, c, xi=0.1, select: Callable | None = None) -> Method:
    """Synaptic intelligence.

    Args:
      model: the model (its ``main`` parameters are regularised).
      c: penalty strength (may be a tracer).
      xi: damping of ``Omega``'s denominator (may be a tracer).
      select: the parameters regularised (default ``model.main``; frozen
        leaves are left out).

    Returns:
      A method with one term, ``'penalty'`` ``= c * sum_i Omega_i
      (theta_i - theta*_i)**2`` (no 1/2); its state is an
      :class:`SIState`. ``update`` uses the gradient of the total loss
      (the penalty included), as the reference does.
    """
    target = trainable_part(model, select)

    def init(snap, ctx):
        del ctx  # unused
        theta = target(snap.params)
        return SIState(anchor=theta, omega=tree.zeros_like(theta),
                       path=tree.zeros_like(theta), start=theta)

    def loss(mstate, fwd, ctx):
        del ctx  # unused
        dist = tree.weighted_sq_dist(mstate.omega, target(fwd.params),
                                     mstate.anchor)
        return {'penalty': c * dist}

    def update(mstate, step, ctx):
        del ctx  # unused
        path = jax.tree.map(lambda w, g, new, old: w - g * (new - old),
                            mstate.path, target(step.grads),
                            target(step.new_params),
                            target(step.params))
        return mstate._replace(path=path)

    def consolidate(mstate, end, ctx):
        del ctx  # unused
        theta = target(end.params)
        omega = jax.tree.map(
            lambda o, w, e, s: o + w / ((e - s) ** 2 + xi),
            mstate.omega, mstate.path, theta, mstate.start)
        return SIState(anchor=theta, omega=omega,
                       path=tree.zeros_like(theta), start=theta)

    return make_method(init=init, loss=loss, update=update,
                       consolidate=consolidate)


# The NMI code's grid-searched values (params/param_values.py of
# GMvandeVen/continual-learning), found with Class-IL over all output
# units; protocols without their own take the scenario's split MNIST value.
si_c = by_protocol({
    ('split-mnist', 'task'): 10.0, ('split-mnist', 'domain'): 5e4,
    ('split-mnist', 'class'): 5e3, ('permuted-mnist', 'task'): 10.0,
    ('permuted-mnist', 'domain'): 10.0, ('permuted-mnist', 'class'): 5.0,
    'task': 10.0, 'domain': 5e4, 'class': 5e3}, 10.0)

ENTRIES = [MethodEntry(
    'si', lambda ctx, hp, model: si(model, c=hp['si.c'], xi=hp['si.xi']),
    defaults=lambda p, s, b: {'si.c': si_c(p, s),
                              'si.xi': default_of(si, 'xi')},
    checks={'si.c': NONNEG, 'si.xi': POSITIVE},
    summary='synaptic intelligence (Zenke et al. 2017)')]
