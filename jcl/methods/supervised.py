"""The supervised objective on the current minibatch, as a Method.

On its own it is the "None" (fine-tuning) baseline; on cumulative data it
is Joint training. It reads the logits of the step's one shared forward
pass (``fwd.outputs``), so it needs no model of its own.

>>> import jax.numpy as jnp
>>> from jcl.types import Batch, Forward, TaskCtx
>>> m = supervised()
>>> ctx = TaskCtx(jnp.int32(0), None, jnp.ones((1, 1, 2), bool))
>>> fwd = Forward(None, {}, Batch(None, jnp.array([0]), jnp.array([0])),
...               {'logits': jnp.zeros((1, 2))}, {})
>>> round(float(m.loss((), fwd, ctx)[0]['loss']), 4)    # log 2
0.6931
"""

import jax.numpy as jnp

from jcl import losses
from jcl.method import Method, make_method


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
