"""The current-batch objective, and how a composition meets it.

:func:`supervised` is the cross-entropy over each example's active
outputs; alone it is the ``none`` (fine-tuning) baseline, and on the data
of all tasks so far it is ``joint`` training (a data choice: the
catalogue entry's ``joint``). :func:`compose` puts it in front of a
composition's members and weighs it ``1/t`` on task ``t`` when a member
replays (replay methods weigh their own terms ``1 - 1/t``), which is how
the command line builds every method.

>>> import jax.numpy as jnp
>>> from jcl.core.records import Batch, Forward, TaskCtx
>>> m = supervised()
>>> ctx = TaskCtx(jnp.int32(0), None, jnp.ones((1, 1, 2), bool))
>>> fwd = Forward(None, {}, Batch(None, jnp.array([0]), jnp.array([0])),
...               {'logits': jnp.zeros((1, 2))}, {})
>>> round(float(m.loss((), fwd, ctx)[0]['loss']), 4)    # log 2
0.6931
"""

import jax.numpy as jnp

from jcl.core import losses
from jcl.core.combine import current_weight, named_chain, scale
from jcl.core.method import Method, identity, make_method
from jcl.methods.entry import MethodEntry


def supervised() -> Method:
    """Cross-entropy over each example's active outputs.

    Returns:
      A stateless method with one term, ``'loss'``.
    """
    def loss(mstate, fwd, ctx):
        del mstate  # unused
        ce = losses.cross_entropy(fwd.outputs['logits'], fwd.batch.y,
                                  ctx.mask(fwd.batch.task))
        return {'loss': jnp.mean(ce)}

    return make_method(loss=loss)


def compose(*named: tuple[str, Method], objective: bool = True) -> Method:
    """A composition as the command line trains it.

    The current-batch cross-entropy (member ``'ce'``; weighted ``1/t`` on
    task ``t`` when a member replays) followed by the members, as a
    :func:`jcl.named_chain` (terms ``'name/term'``).

    Args:
      *named: ``(name, method)`` pairs, e.g. ``('bir', bir(...))``.
      objective: put the cross-entropy first (``False`` for a method with
        its own current-data objective, iCaRL).

    >>> from jcl.methods import si
    >>> from jcl.models import mlp_classifier
    >>> clf = mlp_classifier((4,), num_outputs=2, input_dim=3)
    >>> m = compose(('si', si(clf, c=1.0)))
    >>> m.replays
    False
    """
    members = list(named)
    if objective:
        ce = supervised()
        if any(m.replays for _, m in members):
            ce = scale(ce, current_weight)
        members.insert(0, ('ce', ce))
    return named_chain(*members)


def none() -> Method:
    """Fine-tuning: nothing beyond :func:`compose`'s cross-entropy (the
    lower bound of the papers' tables)."""
    return identity()


def joint() -> Method:
    """Joint training: nothing beyond the cross-entropy; its entry trains
    task ``t`` on the data of tasks ``1..t`` (the upper bound)."""
    return identity()


ENTRIES = [
    MethodEntry('none', lambda ctx, hp, model: none(),
                summary='fine-tuning on each task in turn (lower bound)'),
    MethodEntry('joint', lambda ctx, hp, model: joint(), joint=True,
                summary='training on all tasks so far (upper bound)'),
]
