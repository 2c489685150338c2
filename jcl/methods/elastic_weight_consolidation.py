"""Elastic weight consolidation (Kirkpatrick et al. 2017), offline and online.

After each task the diagonal Fisher information of the model's predictive
distribution on that task's training data (:mod:`jcl.methods.fisher`) weighs a
quadratic penalty that keeps the parameters near their end-of-task values.

>>> import jax, jax.numpy as jnp
>>> from jcl.models import mlp_classifier
>>> from jcl.core.records import Forward, Snapshot, TaskCtx
>>> clf = mlp_classifier((4,), num_outputs=2, input_dim=3)
>>> params, state = clf.init(jax.random.PRNGKey(0))
>>> m = ewc(clf, strength=1e3)
>>> ctx = TaskCtx(jnp.int32(0), jax.random.PRNGKey(1), None)
>>> mstate = m.init(Snapshot(params, state), ctx)
>>> terms, _ = m.loss(mstate, Forward(params, state, None, {}, {}), ctx)
>>> float(terms['penalty'])        # no Fisher yet
0.0
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jcl.core import tree
from jcl.core.method import Method, make_method
from jcl.core.model import Model, trainable_part
from jcl.core.records import PyTree
from jcl.methods.entry import (
    NONNEG,
    SAMPLES,
    Check,
    MethodEntry,
    by_protocol,
    default_of,
)
from jcl.methods.fisher import fisher_diagonal


class EWCState(NamedTuple):
    """Offline EWC: the sum of one quadratic per finished task, kept as one.

    ``sum_k F_k (theta - a_k)**2 = F (theta - m)**2 + offset`` elementwise,
    with ``F = sum_k F_k``, ``m = sum_k F_k a_k / F`` (the Fisher-weighted
    mean anchor) and ``offset = sum_k F_k (a_k - m)**2`` summed over all
    parameters. The penalty and its gradient are therefore exactly those
    of the per-task sum, at the cost of one quadratic whatever the number
    of tasks (the reference keeps one Fisher and anchor per task and sums
    them every step).

    Attributes:
      anchor: like the regularised parameters: ``m`` (where ``F`` is 0:
        the latest anchor, which is weighted 0).
      fisher: like ``anchor``: ``F``, the sum of the tasks' Fishers.
      offset: a scalar, ``sum_k F_k (a_k - m)**2`` (the penalty's constant,
        which has no gradient).
    """

    anchor: PyTree
    fisher: PyTree
    offset: jnp.ndarray


def add_quadratic(state: EWCState, fisher: PyTree,
                  anchor: PyTree) -> EWCState:
    """Adds ``fisher * (theta - anchor)**2`` to a sum of quadratics.

    The parallel-axis update, computed from differences only (no
    cancellation between large terms): with ``F' = F + f`` and ``m' = (F m
    + f a) / F'``, ``offset' = offset + sum F (m - m')**2 + f (a - m')**2``.

    >>> z = {'w': jnp.zeros(2)}
    >>> s = EWCState(z, z, jnp.float32(0))
    >>> s = add_quadratic(s, {'w': jnp.ones(2)}, {'w': jnp.zeros(2)})
    >>> s = add_quadratic(s, {'w': jnp.ones(2)}, {'w': jnp.full(2, 2.)})
    >>> s.anchor['w'].tolist(), float(s.offset)   # 1 (t-0)^2 + 1 (t-2)^2
    ([1.0, 1.0], 4.0)
    """
    total = jax.tree.map(jnp.add, state.fisher, fisher)

    def center(m, f_new, a, tot):
        safe = jnp.where(tot > 0, tot, 1.0)
        return jnp.where(tot > 0, m + f_new * (a - m) / safe, a)

    mean = jax.tree.map(center, state.anchor, fisher, anchor, total)
    extra = jax.tree.map(
        lambda f_old, m, f_new, a, m2: jnp.sum(
            f_old * jnp.square(m - m2) + f_new * jnp.square(a - m2)),
        state.fisher, state.anchor, fisher, anchor, mean)
    return EWCState(mean, total, state.offset + sum(jax.tree.leaves(extra)))


class OnlineEWCState(NamedTuple):
    """Online EWC: one running Fisher and the latest anchor.

    Attributes:
      anchor: the parameters at the end of the latest task (the initial
        parameters before the first).
      fisher: like ``anchor``, ``F <- gamma * F + F_task``.
    """

    anchor: PyTree
    fisher: PyTree


def ewc(model: Model, *, strength, fisher_samples: int | None = None,
        online: bool = False, gamma=1.0, select: Callable | None = None,
        chunk: int | None = None, dense: bool = True) -> Method:
    """Elastic weight consolidation.

    Offline (the default): one Fisher ``F_k`` and anchor ``theta*_k`` per
    finished task, ``penalty = strength / 2 * sum_k sum_i F_k,i
    (theta_i - theta*_k,i)**2``, held as one equal quadratic (see
    :class:`EWCState`). Online: ``F <- gamma * F + F_task``, one
    anchor (the latest), ``penalty = strength / 2 * sum_i gamma * F_i
    (theta_i - theta*_i)**2`` (the reference's extra ``gamma``).

    Args:
      model: the model (its logits define the Fisher).
      strength: ``lambda`` (may be a tracer).
      fisher_samples: ``None``: the Fisher uses the whole task; an int:
        that many examples, drawn without replacement.
      online: online EWC (static).
      gamma: online EWC's decay (may be a tracer).
      select: the parameters regularised (default ``model.main``; frozen
        leaves are left out).
      chunk: examples per vectorised Fisher chunk (static).
      dense: let the Fisher use the dense fast path where it applies.

    Returns:
      A method with one term, ``'penalty'`` (already times ``strength``);
      its state is an :class:`EWCState` or :class:`OnlineEWCState`.
    """
    target = trainable_part(model, select)

    def init(snap, ctx):
        del ctx  # unused
        theta = target(snap.params)
        if online:
            return OnlineEWCState(theta, tree.zeros_like(theta))
        return EWCState(theta, tree.zeros_like(theta), jnp.float32(0.0))

    def loss(mstate, fwd, ctx):
        del ctx  # unused
        theta = target(fwd.params)
        dist = tree.weighted_sq_dist(mstate.fisher, theta, mstate.anchor)
        if online:
            dist = gamma * dist
        else:
            dist = dist + mstate.offset
        return {'penalty': strength * 0.5 * dist}

    def consolidate(mstate, end, ctx):
        new = fisher_diagonal(model, end, ctx, select=target,
                              samples=fisher_samples, chunk=chunk,
                              dense=dense)
        theta = target(end.params)
        if online:
            fisher = jax.tree.map(lambda f, n: gamma * f + n, mstate.fisher,
                                  new)
            return OnlineEWCState(theta, fisher)
        return add_quadratic(mstate, new, theta)

    return make_method(init=init, loss=loss, consolidate=consolidate)


def online_ewc(model: Model, *, strength, gamma=1.0,
               fisher_samples: int | None = None,
               select: Callable | None = None, chunk: int | None = None,
               dense: bool = True) -> Method:
    """Online EWC (Schwarz et al. 2018): :func:`ewc` with one running
    Fisher ``F <- gamma * F + F_task`` and the latest anchor."""
    return ewc(model, strength=strength, fisher_samples=fisher_samples,
               online=True, gamma=gamma, select=select, chunk=chunk,
               dense=dense)


# The NMI code's grid-searched values (params/param_values.py), found with
# Class-IL over all output units.
ewc_lambda = by_protocol({
    ('split-mnist', 'task'): 1e5, ('split-mnist', 'domain'): 1e10,
    ('split-mnist', 'class'): 1e9, ('permuted-mnist', 'task'): 100.0,
    ('permuted-mnist', 'domain'): 100.0,
    ('permuted-mnist', 'class'): 100.0, 'task': 1e5, 'domain': 1e10,
    'class': 1e9}, 1e5)


def fisher_samples(protocol, scenario):
    """Examples the Fisher uses (0: the whole task). The NMI code uses the
    whole task for split protocols, 1000 samples for permuted MNIST
    (60,000 examples per task). On the ResNet protocols jcl's choice is
    200: the Fisher takes one backward pass per output unit and example
    (about 0.23 s per example on one CPU core for ResNet-18 at 32x32), so
    the whole task would cost more than training on it."""
    del scenario  # unused
    return {'permuted-mnist': 1000.0, 'offline-sequence': 200.0,
            'image-folders': 200.0}.get(protocol, 0.0)


def _entry(name, factory, online):
    def build(ctx, hp, model):
        n = ctx.size(f'{name}.fisher_samples')
        extra = {'gamma': hp[f'{name}.gamma']} if online else {}
        return factory(model, strength=hp[f'{name}.lambda'],
                       fisher_samples=n or None, **extra)

    def defaults(p, s, b):
        out = {f'{name}.lambda': ewc_lambda(p, s),
               f'{name}.fisher_samples': fisher_samples(p, s)}
        if online:
            out[f'{name}.gamma'] = default_of(online_ewc, 'gamma')
        return out

    checks = {f'{name}.lambda': NONNEG, f'{name}.fisher_samples': SAMPLES}
    if online:
        checks[f'{name}.gamma'] = Check(lambda v: 0 < v <= 1,
                                        'must be in (0, 1]')
    return MethodEntry(
        name, build, defaults=defaults, checks=checks,
        static=(f'{name}.fisher_samples',),
        summary=('online EWC (Schwarz et al. 2018)' if online else
                 'elastic weight consolidation (Kirkpatrick et al. 2017)'))


ENTRIES = [_entry('ewc', ewc, False), _entry('online-ewc', online_ewc, True)]
