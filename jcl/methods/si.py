"""Synaptic intelligence (Zenke et al. 2017).

During a task each parameter accumulates its contribution to the decrease
of the loss, ``W += -g * delta_theta`` after every optimiser step. At the
task's end ``Omega += W / (Delta**2 + xi)`` with ``Delta`` the parameter's
change over the task, and ``c * sum Omega (theta - theta*)**2`` keeps later
tasks near ``theta*``, the parameters at the end of the last task.

Example::

    m = si(c=10.0)
    mstate = m.init(params, key)
    mstate = m.update(mstate, params, grads, new_params, ctx)  # each step
    mstate = m.consolidate(mstate, params, train_data, ctx)    # task end
"""

from collections.abc import Callable
from typing import NamedTuple

import jax

from jcl import tree
from jcl.base import Method, make_method
from jcl.types import PyTree


def _classifier(params):
    return params['classifier']


class SIState(NamedTuple):
    """SI's state; every field is a tree like ``select(params)``.

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


def si(*, c, xi=0.1, select: Callable = _classifier) -> Method:
    """Synaptic intelligence.

    Args:
      c: penalty strength (may be a tracer).
      xi: damping of ``Omega``'s denominator (may be a tracer).
      select: the parameter subtree that is regularised.

    Returns:
      A method with one term, ``'penalty'`` ``= c * sum_i Omega_i
      (theta_i - theta*_i)**2`` (no 1/2); its state is an
      :class:`SIState`. ``update`` uses the gradient of the total loss
      (the penalty included), as the reference does.

    Example::

        m = si(c=hp['si.c'], xi=0.1)
        m.loss(params, m.init(params, key), batch, ctx)  # {'penalty': 0.}
    """
    def init(params, key):
        del key  # unused
        theta = select(params)
        return SIState(anchor=theta, omega=tree.zeros_like(theta),
                       path=tree.zeros_like(theta), start=theta)

    def loss(params, mstate, batch, ctx):
        del batch, ctx  # unused
        dist = tree.weighted_sq_dist(mstate.omega, select(params),
                                     mstate.anchor)
        return {'penalty': c * dist}

    def update(mstate, params, grads, new_params, ctx):
        del ctx  # unused
        path = jax.tree.map(lambda w, g, new, old: w - g * (new - old),
                            mstate.path, select(grads), select(new_params),
                            select(params))
        return mstate._replace(path=path)

    def consolidate(mstate, params, data, ctx):
        del data, ctx  # unused
        theta = select(params)
        omega = jax.tree.map(
            lambda o, w, end, s: o + w / ((end - s) ** 2 + xi),
            mstate.omega, mstate.path, theta, mstate.start)
        return SIState(anchor=theta, omega=omega,
                       path=tree.zeros_like(theta), start=theta)

    return make_method(init=init, loss=loss, update=update,
                       consolidate=consolidate)
