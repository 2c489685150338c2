"""The supervised objective on the current minibatch, as a Method.

On its own it is the "None" (fine-tuning) baseline; on cumulative data it
is Joint training.
"""

import jax.numpy as jnp

from jcl import losses
from jcl.base import Method, make_method


def supervised(classify) -> Method:
    """Cross-entropy over each example's active outputs.

    Args:
      classify: ``(params, x, task) -> logits``.

    Returns:
      A stateless method with one term, ``'loss'``.

    Example::

        m = supervised(clf.apply)
        m.loss(params, (), batch, ctx)   # {'loss': scalar}
    """
    def loss(params, mstate, batch, ctx):
        del mstate  # unused
        logits = classify(params, batch.x, batch.task)
        ce = losses.cross_entropy(logits, batch.y, ctx.mask(batch.task))
        return {'loss': jnp.mean(ce)}

    return make_method(loss=loss)
