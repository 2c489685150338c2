"""Device-resident task data, protocols and key-driven minibatches.

A protocol's data is one pool of examples plus per-task index tables, all
padded to one shape so that every task runs through the same compiled
step. Minibatches are drawn inside the step from a PRNG key.

Example::

    proto = jcl.data.split_mnist(jcl.datasets.load_mnist(), 'class')
    batch = jcl.data.sample(proto.train, 0, key, 128)   # Batch(x, y, task)
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jcl.errors import ConfigError, DataError
from jcl.types import Array, Batch, PRNGKey

SCENARIOS = ('task', 'domain', 'class')


class TaskData(NamedTuple):
    """All tasks' examples of one split (train or test), padded.

    Attributes:
      images: uint8 ``[N, D]`` the pool of inputs (flattened).
      labels: int32 ``[N]`` target of each pool example before the task's
        offset (class rank, or rank within the task for Domain-IL).
      index: int32 ``[T, M]`` pool positions of task ``t``'s examples;
        only the first ``count[t]`` entries are valid.
      count: int32 ``[T]`` number of examples of each task.
      origin: int32 ``[T, M]`` the task each entry belongs to (differs from
        ``t`` only for cumulative, i.e. joint, training data).
      offset: int32 ``[T]`` added to ``labels`` for examples of each task
        (permuted MNIST in Task-/Class-IL: ``10 * t``).
      perm: int32 ``[T, D]`` per-task input permutation, or ``None``.
    """

    images: Array
    labels: Array
    index: Array
    count: Array
    origin: Array
    offset: Array
    perm: Array | None


class Protocol(NamedTuple):
    """A task sequence in one scenario: data plus the active-output table.

    Attributes:
      name: e.g. ``'split-mnist'``. scenario: ``'task'|'domain'|'class'``.
      train, test: :class:`TaskData`.
      active: bool ``[T, T, C]``, see :class:`jcl.types.TaskCtx`.
      input_shape: shape of one input, e.g. ``(784,)``.
      num_outputs: ``C``.
      valid: a validation split held out from the training data (for
        choosing hyperparameters), or ``None``.
    """

    name: str
    scenario: str
    train: TaskData
    test: TaskData
    active: np.ndarray
    input_shape: tuple
    num_outputs: int
    valid: TaskData | None = None

    @property
    def num_tasks(self) -> int:
        return int(self.active.shape[0])


def sample(data: TaskData, task_id, key: PRNGKey, n: int) -> Batch:
    """Draws ``n`` examples of task ``task_id`` uniformly with replacement.

    Args:
      data: the task data. task_id: int (may be traced). key: PRNG key.
      n: static batch size.

    Returns:
      A :class:`Batch` with float32 inputs in [0, 1].
    """
    j = jax.random.randint(key, (n,), 0, data.count[task_id])
    return gather(data, data.index[task_id, j], data.origin[task_id, j])


def gather(data: TaskData, pos, origin) -> Batch:
    """The batch of pool positions ``pos`` belonging to tasks ``origin``."""
    x = data.images[pos]
    if data.perm is not None:
        x = jnp.take_along_axis(x, data.perm[origin], axis=1)
    x = x.astype(jnp.float32) / 255.0
    y = data.labels[pos] + data.offset[origin]
    return Batch(x=x, y=y, task=origin)


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


def _split_tables(labels, task_classes):
    """index/count/origin tables of a class split of one pool."""
    labels = np.asarray(labels)
    parts = [np.flatnonzero(np.isin(labels, cls)) for cls in task_classes]
    width = max(len(p) for p in parts)
    index = np.zeros((len(parts), width), np.int32)
    for t, p in enumerate(parts):
        index[t, :len(p)] = p
    count = np.array([len(p) for p in parts], np.int32)
    origin = np.repeat(np.arange(len(parts), dtype=np.int32)[:, None],
                       width, axis=1)
    return index, count, origin


def active_table(scenario: str, task_outputs: list) -> np.ndarray:
    """The ``[T, T, C]`` active-output table of a scenario.

    Args:
      scenario: ``'task'``, ``'domain'`` or ``'class'``.
      task_outputs: for each task, the output units of its classes (for
        Domain-IL all tasks share the same units).

    Returns:
      Task-IL: ``active[i, j]`` = units of task ``j``; Domain-IL: all
      units; Class-IL: units of tasks ``0..i``.
    """
    check_scenario(scenario)
    num_tasks = len(task_outputs)
    size = max(max(u) for u in task_outputs) + 1
    own = np.zeros((num_tasks, size), bool)
    for t, units in enumerate(task_outputs):
        own[t, units] = True
    if scenario == 'task':
        return np.broadcast_to(own[None], (num_tasks,) + own.shape).copy()
    if scenario == 'domain':
        return np.ones((num_tasks, num_tasks, size), bool)
    seen = np.cumsum(own, axis=0) > 0
    return np.broadcast_to(seen[:, None], (num_tasks,) + own.shape).copy()


def check_scenario(scenario: str):
    if scenario not in SCENARIOS:
        raise ConfigError(f'unknown scenario {scenario!r}; choose one of '
                          f'{", ".join(SCENARIOS)}')


def class_split(name, arrays, scenario, *, classes_per_task=2,
                class_order=None) -> Protocol:
    """A split protocol (split MNIST, split Fashion-MNIST, split CIFAR).

    Args:
      name: protocol name. arrays: dict with ``train_x``, ``train_y``,
        ``test_x``, ``test_y`` (uint8 images, integer labels).
      scenario: ``'task'``, ``'domain'`` or ``'class'``.
      classes_per_task: classes in each task.
      class_order: the classes in task order (default ``0, 1, 2, ...``:
        the papers' fixed order; the NMI code shuffles per seed).

    Returns:
      A :class:`Protocol`. Targets are the class's rank in ``class_order``
      (Task-/Class-IL) or its rank within its task (Domain-IL).
    """
    check_scenario(scenario)
    num_classes = int(np.max(arrays['train_y'])) + 1
    order = (np.arange(num_classes) if class_order is None
             else np.asarray(class_order))
    if sorted(order.tolist()) != list(range(num_classes)):
        raise ConfigError(f'class order {order.tolist()} is not a '
                          f'permutation of 0..{num_classes - 1}')
    if num_classes % classes_per_task:
        raise ConfigError(f'{num_classes} classes do not split into tasks '
                          f'of {classes_per_task}')
    num_tasks = num_classes // classes_per_task
    rank = np.argsort(order)  # rank[c] = position of class c in the order
    task_classes = order.reshape(num_tasks, classes_per_task)
    if scenario == 'domain':
        outputs = [list(range(classes_per_task))] * num_tasks
    else:
        outputs = [list(range(t * classes_per_task, (t + 1) *
                              classes_per_task)) for t in range(num_tasks)]

    def split(x, y):
        y = np.asarray(y).astype(np.int64)
        target = rank[y]
        if scenario == 'domain':
            target = target % classes_per_task
        index, count, origin = _split_tables(y, task_classes)
        if count.min() == 0:
            empty = int(np.argmin(count))
            raise DataError(f'{name}: task {empty + 1} (classes '
                            f'{task_classes[empty].tolist()}) has no '
                            'examples in this data')
        return TaskData(
            images=np.asarray(x).reshape(len(x), -1),
            labels=target.astype(np.int32), index=index, count=count,
            origin=origin, offset=np.zeros(num_tasks, np.int32), perm=None)

    train = split(arrays['train_x'], arrays['train_y'])
    return Protocol(name, scenario, train,
                    split(arrays['test_x'], arrays['test_y']),
                    active_table(scenario, outputs),
                    (train.images.shape[1],),
                    len(set(sum(outputs, []))))


def permuted(name, arrays, scenario, *, num_tasks=10, seed=0, pad_to=32,
             first_identity=True) -> Protocol:
    """Permuted MNIST: each task permutes the pixels of the padded image.

    Args:
      name: protocol name. arrays: dict of MNIST-like uint8 arrays.
      scenario: Domain-IL (the usual), Task- or Class-IL (outputs
        ``10 * num_tasks``).
      num_tasks: number of permutations. seed: seed of the permutations.
      pad_to: images are zero-padded to ``pad_to x pad_to``.
      first_identity: task 1 is the unpermuted image (as the references).
    """
    check_scenario(scenario)
    if num_tasks < 1:
        raise ConfigError(f'need at least one permutation, got {num_tasks}')
    rng = np.random.RandomState(seed)
    size = pad_to * pad_to
    perms = np.stack([np.arange(size) if (t == 0 and first_identity)
                      else rng.permutation(size)
                      for t in range(num_tasks)]).astype(np.int32)
    classes = int(np.max(arrays['train_y'])) + 1
    if scenario == 'domain':
        outputs = [list(range(classes))] * num_tasks
        offset = np.zeros(num_tasks, np.int32)
    else:
        outputs = [list(range(t * classes, (t + 1) * classes))
                   for t in range(num_tasks)]
        offset = (classes * np.arange(num_tasks)).astype(np.int32)

    def build(x, y):
        x = np.asarray(x)
        h, w = x.shape[1:3]
        top, left = (pad_to - h) // 2, (pad_to - w) // 2
        padded = np.zeros((len(x), pad_to, pad_to), np.uint8)
        padded[:, top:top + h, left:left + w] = x
        n = len(x)
        return TaskData(
            images=padded.reshape(n, size),
            labels=np.asarray(y).astype(np.int32),
            index=np.tile(np.arange(n, dtype=np.int32), (num_tasks, 1)),
            count=np.full(num_tasks, n, np.int32),
            origin=np.repeat(np.arange(num_tasks, dtype=np.int32)[:, None],
                             n, axis=1),
            offset=offset, perm=perms)

    return Protocol(name, scenario, build(arrays['train_x'],
                                          arrays['train_y']),
                    build(arrays['test_x'], arrays['test_y']),
                    active_table(scenario, outputs), (size,),
                    len(set(sum(outputs, []))))


def holdout(data: TaskData, fraction: float, seed: int = 0):
    """Holds out a random ``fraction`` of every task's training examples.

    Args:
      data: per-task training data. fraction: in (0, 1). seed: the split.

    Returns:
      ``(train, valid)`` over the same pool: disjoint index tables.

    Example::

        train, valid = holdout(proto.train, 0.1)
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


def with_validation(protocol: Protocol, fraction: float,
                    seed: int = 0) -> Protocol:
    """The protocol trained on ``1 - fraction`` of the training data, with
    the rest as ``protocol.valid`` (the test set is untouched)."""
    train, valid = holdout(protocol.train, fraction, seed)
    return protocol._replace(train=train, valid=valid)


def to_device(data: TaskData) -> TaskData:
    """Puts every array of ``data`` on the default device once."""
    return jax.tree.map(jnp.asarray, data)
