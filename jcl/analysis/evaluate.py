"""Pure evaluation: per-task accuracy, the R matrix and its summaries.

``R[i, j]`` is the test accuracy on task ``j`` after training task ``i``
(scenario masks of row ``i``). Summary functions take ``R`` with any
leading axes (seeds, sweep points) and reduce the last two.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jcl.core import losses
from jcl.core.taskdata import TaskData, gather


def task_accuracies(scores, data: TaskData, active_row, prepare, *,
                    batch_size=1000):
    """Accuracy on every task's full test set.

    Args:
      scores: ``(x, task) -> [B, C]`` the model's predictions (logits, or
        a method's override) on prepared inputs.
      data: test :class:`jcl.core.taskdata.TaskData` (device resident).
      active_row: bool ``[T, C]``, the active outputs of each task.
      prepare: the protocol's ``raw inputs -> model inputs``.
      batch_size: evaluation chunk (bounds memory only), at most the
        largest task's test set.

    Returns:
      float32 ``[T]`` accuracies in [0, 1].
    """
    num_tasks, width = data.index.shape
    batch_size = min(batch_size, width)   # a small test set: no padding
    chunks = -(-width // batch_size)

    def one_task(t):
        def body(correct, c):
            pos = c * batch_size + jnp.arange(batch_size)
            valid = pos < data.count[t]
            pos = jnp.minimum(pos, width - 1)
            batch = gather(data, data.index[t, pos], data.origin[t, pos])
            hit = correct_of(scores(prepare(batch.x), batch.task), batch,
                             active_row)
            return correct + jnp.sum(hit * valid), None

        correct, _ = jax.lax.scan(body, 0.0, jnp.arange(chunks))
        return correct / data.count[t]

    return jax.lax.map(one_task, jnp.arange(num_tasks))


def correct_of(scores, batch, active_row):
    """``[B]`` 1.0 where the arg-max of ``scores`` over each example's
    active outputs (``active_row[batch.task]``) is its label."""
    return losses.accuracy(scores, batch.y, active_row[batch.task])


def average_accuracy(R):
    """Average accuracy over the tasks seen so far, after each task.

    Args:
      R: ``[..., T, T]``.

    Returns:
      ``[..., T]``: entry ``i`` is ``mean_{j<=i} R[i, j]``; the last entry
      is the headline metric.
    """
    R = np.asarray(R)
    num_tasks = R.shape[-1]
    seen = np.tril(np.ones((num_tasks, num_tasks)))
    return (R * seen).sum(-1) / seen.sum(-1)


def backward_transfer(R):
    """``mean_{j<T-1} R[T-1, j] - R[j, j]`` (negative: forgetting)."""
    R = np.asarray(R)
    t = R.shape[-1]
    if t < 2:
        return np.zeros(R.shape[:-2])
    final = R[..., -1, :-1]
    diag = np.diagonal(R, axis1=-2, axis2=-1)[..., :-1]
    return (final - diag).mean(-1)


def forward_transfer(R, R_init):
    """``mean_{j>0} R[j-1, j] - R_init[j-1, j]``.

    ``R_init`` is the accuracy matrix of the untrained model (row ``i``
    with row ``i``'s masks), the baseline for zero transfer.
    """
    R = np.asarray(R)
    R_init = np.asarray(R_init)
    t = R.shape[-1]
    if t < 2:
        return np.zeros(R.shape[:-2])
    idx = np.arange(1, t)
    return (R[..., idx - 1, idx] - R_init[..., idx - 1, idx]).mean(-1)


def forgetting(R):
    """``mean_{j<T-1} max_{i<T-1} R[i, j] - R[T-1, j]`` (Chaudhry et al.),
    the maximum over rows ``i >= j``."""
    R = np.asarray(R)
    t = R.shape[-1]
    if t < 2:
        return np.zeros(R.shape[:-2])
    seen = np.tril(np.ones((t, t), bool))[:-1, :-1]
    best = np.where(seen, R[..., :-1, :-1], -np.inf).max(-2)
    return (best - R[..., -1, :-1]).mean(-1)


def mean_sem(values, axis=0):
    """Mean and standard error of the mean (``std/sqrt(n)``, ddof=1)."""
    values = np.asarray(values, np.float64)
    n = values.shape[axis]
    mean = values.mean(axis)
    if n < 2:
        return mean, np.zeros_like(mean)
    return mean, values.std(axis, ddof=1) / np.sqrt(n)
