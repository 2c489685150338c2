"""The diagonal Fisher information of a classifier on a task's data.

``F = mean_x sum_c p(c|x) * (grad log p(c|x))**2``: the expectation over
labels under the model's own predictive distribution (over each example's
active outputs), as EWC uses it. Built from the two public helpers a
method author has: :func:`jcl.core.over_task.over_task` (the finished
task's data in chunks) and :func:`jcl.core.per_example.weighted_powers`
(per-example squared gradients, with the dense fast path of models that
declare taps).

>>> import jax, jax.numpy as jnp, numpy as np
>>> from jcl.core.records import TaskCtx, TaskEnd
>>> from jcl.models import mlp_classifier
>>> from jcl.tasks.protocols import class_split, pixels
>>> from jcl.core.taskdata import to_device
>>> pool = dict(train_x=np.full((6, 4), 9, np.uint8),
...             train_y=np.arange(6) % 2, test_x=np.zeros((2, 4), np.uint8),
...             test_y=np.arange(2))
>>> proto = class_split('toy', pool, 'task', classes_per_task=2)
>>> clf = mlp_classifier((5,), num_outputs=2, input_dim=4)
>>> params, state = clf.init(jax.random.PRNGKey(0))
>>> end = TaskEnd(params, state, to_device(proto.train), pixels)
>>> ctx = TaskCtx(jnp.int32(0), jax.random.PRNGKey(1),
...               jnp.asarray(proto.active))
>>> F = fisher_diagonal(clf, end, ctx)
>>> F['Dense_0']['kernel'].shape, bool((F['Dense_0']['kernel'] >= 0).all())
((4, 5), True)
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jcl.core import losses, tree
from jcl.core.model import Model
from jcl.core.over_task import over_task
from jcl.core.per_example import dense_layers, weighted_powers
from jcl.core.records import Snapshot, TaskCtx, TaskEnd

# examples per chunk: the generic path holds about chunk * num_params
# floats, the dense path a few chunk * num_units
GENERIC_CHUNK = 32
DENSE_CHUNK = 256


def log_probs(logits, mask):
    """Log-probabilities over each example's active outputs."""
    return jax.nn.log_softmax(losses.mask_logits(logits, mask))


def fisher_diagonal(model: Model, end: TaskEnd, ctx: TaskCtx, *,
                    select: Callable | None = None,
                    samples: int | None = None, chunk: int | None = None,
                    dense: bool = True):
    """The diagonal Fisher on the training data of task ``ctx.task_id``.

    An exact expectation over the active outputs
    ``ctx.active[ctx.task_id, task]`` of each example; examples go through
    in chunks of ``chunk`` (scanned over chunks).

    Args:
      model: the model. end: the finished task (parameters, model state,
        data and its ``prepare``).
      ctx: its context (``task_id``; ``key`` draws the samples).
      select: the parameter subtree the Fisher is taken of (default:
        ``model.main``).
      samples: ``None``: all examples of the task; an int ``n``: ``n``
        examples drawn without replacement (static).
      chunk: examples per vectorised chunk (static; ``None``:
        :data:`DENSE_CHUNK` or :data:`GENERIC_CHUNK`).
      dense: use the dense fast path where it applies (static).

    Returns:
      A tree like ``select(params)``.
    """
    select = model.main if select is None else select
    snap = Snapshot(end.params, end.model_state)
    fast = dense and dense_layers(model, end.params, select) is not None
    if chunk is None:
        chunk = DENSE_CHUNK if fast else GENERIC_CHUNK

    def fold(acc, batch, weight):
        mask = ctx.mask(batch.task)
        f = weighted_powers(model, snap, batch.x, batch.task, log_probs,
                            mask, example_weight=weight,
                            output_weight=jnp.exp, active=mask,
                            select=select, dense=dense)
        return jax.tree.map(jnp.add, acc, f)

    total, n = over_task(end, ctx, fold, tree.zeros_like(select(end.params)),
                         chunk=chunk, samples=samples)
    n = jnp.maximum(n, 1.0)
    return jax.tree.map(lambda f: f / n, total)
