"""Going over a finished task's training data inside the compiled program.

What ``consolidate`` of a method often needs (a Fisher, an importance
estimate, a buffer's selection): a fold over the examples of the task
that just ended, in fixed-size chunks so that the program's shapes do not
depend on the task's size, all inside ``jit``/``vmap``. The last chunk is
padded; padded entries come with weight 0.

>>> import jax.numpy as jnp, numpy as np
>>> from jcl.core.records import TaskCtx, TaskEnd
>>> from jcl.core.taskdata import TaskData, to_device
>>> data = TaskData(images=np.arange(5, dtype=np.uint8)[:, None],
...                 labels=np.zeros(5, np.int32),
...                 index=np.array([[0, 1, 2, 3, 4]], np.int32),
...                 count=np.array([5], np.int32),
...                 origin=np.zeros((1, 5), np.int32),
...                 offset=np.zeros(1, np.int32), perm=None)
>>> end = TaskEnd({}, {}, to_device(data), lambda x: x.astype(jnp.float32))
>>> ctx = TaskCtx(jnp.int32(0), None, None)
>>> total, n = over_task(end, ctx, lambda acc, batch, w: acc + w @ batch.x,
...                      jnp.zeros(1), chunk=2)
>>> total.tolist(), float(n)              # 0 + 1 + 2 + 3 + 4, 5 examples
([10.0], 5.0)
"""

from typing import Callable

import jax
import jax.numpy as jnp

from jcl.core.records import PyTree, TaskCtx, TaskEnd
from jcl.core.taskdata import task_batch


def positions(count, width: int, key, samples: int | None):
    """The entries of a task to go over and their 0/1 weights.

    Args:
      count: how many of the ``width`` entries are valid (may be traced).
      width: the padded width of the task's index table (static).
      key: draws the sample (unused when ``samples`` is ``None``).
      samples: ``None``: every entry; ``n``: ``n`` distinct valid entries
        drawn uniformly without replacement (static).

    Returns:
      ``(entries, weights)``: int ``[n]`` and float ``[n]`` (1 for a
      valid entry, 0 for padding).
    """
    if samples is None:
        j = jnp.arange(width)
    else:
        # n distinct valid entries: the n smallest uniform scores
        u = jax.random.uniform(key, (width,))
        u = jnp.where(jnp.arange(width) < count, u, 2.0)
        _, j = jax.lax.top_k(-u, min(int(samples), width))
    return j, (j < count).astype(jnp.float32)


def over_task(end: TaskEnd, ctx: TaskCtx, fold: Callable, init: PyTree, *,
              chunk: int, samples: int | None = None):
    """Folds ``fold`` over the training data of the task that ended.

    Args:
      end: the finished task (its data, parameters and ``prepare``).
      ctx: its context; ``ctx.task_id`` is the task, ``ctx.key`` draws
        the sample.
      fold: ``(acc, batch, weight) -> acc``: ``batch`` a
        :class:`jcl.core.records.Batch` of ``chunk`` examples prepared for
        the model, ``weight`` float ``[chunk]`` (0 at padding).
      init: the initial accumulator (a pytree).
      chunk: examples per call of ``fold`` (static).
      samples: ``None``: every example of the task; ``n``: ``n`` examples
        drawn without replacement (static).

    Returns:
      ``(acc, n)``: the folded value and the number of examples it saw
      (a float scalar).
    """
    t = ctx.task_id
    j, weight = positions(end.data.count[t], end.data.index.shape[1],
                          ctx.key, samples)
    pad = -j.shape[0] % chunk
    j = jnp.pad(j, (0, pad)).reshape(-1, chunk)
    weight = jnp.pad(weight, (0, pad)).reshape(-1, chunk)

    def body(acc, inputs):
        jj, w = inputs
        return fold(acc, task_batch(end, t, jj), w), None

    acc, _ = jax.lax.scan(body, init, (j, weight))
    return acc, jnp.sum(weight)
