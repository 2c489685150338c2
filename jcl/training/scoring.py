"""Scoring a carry: the method's prediction or the model's logits, the
untrained model's accuracies, and the tables of active output units each
evaluation view is scored with.

>>> import numpy as np
>>> t = np.ones((2, 2, 4), bool)
>>> tables({'train': t, 'test_task': ~t})[1].keys()
dict_keys(['test_task'])
"""

import functools

import jax
import jax.numpy as jnp

from jcl.analysis.evaluate import task_accuracies
from jcl.core.model import logits
from jcl.core.records import CLState, Snapshot
from jcl.core.taskdata import TaskData
from jcl.training.learner import Learner


def scores_fn(learner: Learner, hp, state: CLState):
    """``(x, task) -> [B, C]``: the method's prediction override, or the
    model's logits in evaluation mode."""
    model = learner.make_model(hp)
    method = learner.make_method(hp, model)
    snap = Snapshot(state.params, state.model_state)
    if method.predict is not None:
        return functools.partial(method.predict, state.mstate, snap)
    return functools.partial(logits, model, snap)


def initial_accuracy(learner: Learner, state: CLState, hp, test, active):
    """``R_init[i, j]``: the untrained model with row ``i``'s masks."""
    active, views = tables(active)
    scores = scores_fn(learner, hp, state)
    return each_eval(lambda d, table: jax.vmap(lambda row: task_accuracies(
        scores, d, row, learner.prepare))(table), test, active, views)


def tables(active):
    """``(training table, {view name: table})`` of an ``active`` argument.

    ``active`` is one bool ``[T, T, C]`` table, used for everything, or a
    dict with the ``'train'`` table and one per evaluation view scored
    differently: e.g. a Class-IL run's test data scored again with each
    task's own units (``{'train': class_table, 'test_task': task_table}``).
    """
    if isinstance(active, dict):
        return active['train'], {k: v for k, v in active.items()
                                 if k != 'train'}
    return active, {}


def each_eval(fn, evals, active, views):
    """``fn(data, table)`` on one TaskData, or on each value of a dict of
    them with its view's table (``views[name]``, else ``active``).

    A view with no data of its own in ``evals`` scores ``evals['test']``
    in the same pass: ``fn`` is vmapped over the stacked tables, and the
    predictions, which do not depend on the table, are computed once (a
    Class-IL run's Task-IL view costs no second forward pass).

    >>> import jax.numpy as jnp
    >>> data = TaskData(*[jnp.zeros(1)] * 7)
    >>> out = each_eval(lambda d, t: t.sum(), {'test': data}, jnp.ones(3),
    ...                 {'test_task': jnp.zeros(3)})
    >>> {k: float(v) for k, v in out.items()}
    {'test': 3.0, 'test_task': 0.0}
    """
    if isinstance(evals, TaskData):
        return fn(evals, active)
    if 'test' not in evals and any(n not in evals for n in views):
        raise ValueError(f'views {sorted(n for n in views if n not in evals)} '
                         f'score the test data, which evals lacks')
    out = {}
    for k, v in evals.items():
        table = views.get(k, active)
        extra = [n for n in views if n not in evals] if k == 'test' else []
        if not extra:
            out[k] = fn(v, table)
            continue
        stacked = jnp.stack([table] + [views[n] for n in extra])
        both = jax.vmap(lambda t, v=v: fn(v, t))(stacked)
        for i, n in enumerate([k] + extra):
            out[n] = jax.tree.map(lambda a, i=i: a[i], both)
    return out
