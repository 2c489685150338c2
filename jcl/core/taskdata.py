"""Device-resident task data and key-driven minibatches.

A split of a protocol (train, test, validation) is one pool of raw
examples plus per-task index tables, padded to one shape so that every
task runs through the same compiled step. The data layer gathers raw
examples (e.g. uint8 pixels); turning them into model inputs is the
protocol's ``prepare`` (:class:`jcl.tasks.protocols.Protocol`).

>>> import numpy as np
>>> from jcl.tasks.protocols import class_split
>>> pool = dict(train_x=np.arange(8, dtype=np.uint8).reshape(4, 2),
...             train_y=np.array([0, 1, 2, 3]), test_x=np.zeros((4, 2),
...             np.uint8), test_y=np.array([0, 1, 2, 3]))
>>> proto = class_split('toy', pool, 'class')
>>> b = gather(proto.train, proto.train.index[1, :2],
...            proto.train.origin[1, :2])
>>> b.x.tolist(), b.y.tolist(), b.task.tolist()
([[4, 5], [6, 7]], [2, 3], [1, 1])
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jcl.core.errors import ConfigError
from jcl.core.records import Array, Batch, PRNGKey, TaskEnd


class TaskData(NamedTuple):
    """All tasks' examples of one split (train or test), padded.

    Attributes:
      images: ``[N, ...]`` the pool of raw inputs (uint8 pixels, laid out
        as the protocol's model reads them).
      labels: int32 ``[N]`` target of each pool example before the task's
        offset (class rank, or rank within the task for Domain-IL).
      index: int32 ``[T, M]`` pool positions of task ``t``'s examples;
        only the first ``count[t]`` entries are valid.
      count: int32 ``[T]`` number of examples of each task.
      origin: int32 ``[T, M]`` the task each entry belongs to (differs from
        ``t`` only for cumulative, i.e. joint, training data).
      offset: int32 ``[T]`` added to ``labels`` for examples of each task
        (permuted MNIST in Task-/Class-IL: ``10 * t``).
      perm: int32 ``[T, D]`` per-task permutation of the (flat) inputs,
        part of what a task is (permuted MNIST), or ``None``.
    """

    images: Array
    labels: Array
    index: Array
    count: Array
    origin: Array
    offset: Array
    perm: Array | None


def gather(data: TaskData, pos, origin) -> Batch:
    """The raw batch of pool positions ``pos`` belonging to tasks
    ``origin`` (inputs permuted by their task where the protocol does)."""
    x = data.images[pos]
    if data.perm is not None:
        x = jnp.take_along_axis(x, data.perm[origin], axis=1)
    y = data.labels[pos] + data.offset[origin]
    return Batch(x=x, y=y, task=origin)


def sample(data: TaskData, task_id, key: PRNGKey, n: int) -> Batch:
    """Draws ``n`` raw examples of task ``task_id`` uniformly with
    replacement (``task_id`` may be traced; ``n`` is static)."""
    j = jax.random.randint(key, (n,), 0, data.count[task_id])
    return gather(data, data.index[task_id, j], data.origin[task_id, j])


def task_batch(end: TaskEnd, task, j) -> Batch:
    """Entries ``j`` of task ``task`` of a finished task's training data,
    prepared for the model (for ``consolidate``: a Fisher, a buffer)."""
    b = gather(end.data, end.data.index[task, j], end.data.origin[task, j])
    return b._replace(x=end.prepare(b.x))


def cumulative(data: TaskData) -> TaskData:
    """Task ``t`` of the result holds the examples of tasks ``0..t``.

    This is how Joint training is a data choice: the same method and step
    see, on task ``t``, all data so far.
    """
    index = np.asarray(data.index)
    count = np.asarray(data.count)
    origin = np.asarray(data.origin)
    total = np.cumsum(count)
    num_tasks = index.shape[0]
    new_index = np.zeros((num_tasks, total[-1]), np.int32)
    new_origin = np.zeros((num_tasks, total[-1]), np.int32)
    for t in range(num_tasks):
        new_index[t, :total[t]] = np.concatenate(
            [index[s, :count[s]] for s in range(t + 1)])
        new_origin[t, :total[t]] = np.concatenate(
            [origin[s, :count[s]] for s in range(t + 1)])
    return data._replace(index=new_index, origin=new_origin,
                         count=total.astype(np.int32))


def holdout(data: TaskData, fraction: float, seed: int = 0):
    """Holds out a random ``fraction`` of every task's training examples.

    Args:
      data: per-task training data. fraction: in (0, 1). seed: the split.

    Returns:
      ``(train, valid)`` over the same pool: disjoint index tables.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f'validation fraction must be in (0, 1), got '
                          f'{fraction}')
    index, count = np.asarray(data.index), np.asarray(data.count)
    origin = np.asarray(data.origin)
    parts = {'train': [], 'valid': []}
    for t in range(len(count)):
        order = np.random.RandomState(seed + t).permutation(count[t])
        n_valid = max(1, int(round(fraction * count[t])))
        parts['valid'].append(order[:n_valid])
        parts['train'].append(np.sort(order[n_valid:]))
    out = []
    for name in ('train', 'valid'):
        width = max(len(p) for p in parts[name])
        idx = np.zeros((len(count), width), np.int32)
        org = np.zeros((len(count), width), np.int32)
        for t, p in enumerate(parts[name]):
            idx[t, :len(p)] = index[t, p]
            org[t, :len(p)] = origin[t, p]
        out.append(data._replace(
            index=idx, origin=org,
            count=np.array([len(p) for p in parts[name]], np.int32)))
    return tuple(out)


def stack(datas: list):
    """Stacks per-seed :class:`TaskData` whose index tables differ.

    Leaves equal across seeds (the image pool, shared permutations) stay
    shared; the others get a leading seed axis.

    Returns:
      ``(data, axes)``: the stacked data and its ``vmap`` axes (a
      :class:`TaskData` of ``None`` or ``0``).
    """
    first = datas[0]
    fields, axes = {}, {}
    for name in first._fields:
        leaves = [getattr(d, name) for d in datas]
        if leaves[0] is None or all(np.array_equal(leaves[0], x)
                                    for x in leaves[1:]):
            fields[name], axes[name] = leaves[0], None
        else:
            fields[name], axes[name] = np.stack(_pad_same(leaves)), 0
    return type(first)(**fields), type(first)(**axes)


def _pad_same(arrays):
    """Zero-pads arrays to a common shape (index tables of different
    widths; padded entries lie beyond each task's count)."""
    shape = np.max([np.shape(a) for a in arrays], axis=0)
    out = []
    for a in arrays:
        a = np.asarray(a)
        out.append(np.pad(a, [(0, s - n) for s, n in zip(shape, a.shape)]))
    return out


def to_device(data: TaskData) -> TaskData:
    """Puts every array of ``data`` on the default device once."""
    return jax.tree.map(jnp.asarray, data)
