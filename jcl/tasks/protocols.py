"""Protocols: a task sequence in one scenario, built from a data set.

A :class:`Protocol` is the task data (:mod:`jcl.core.taskdata`), the scenario's
active-output table and ``prepare``, the protocol's own preprocessing of
raw inputs into model inputs (it runs inside the compiled step, for
device-resident and host-streamed batches alike).

>>> import numpy as np
>>> pool = dict(train_x=np.zeros((4, 3), np.uint8),
...             train_y=np.array([0, 1, 2, 3]),
...             test_x=np.zeros((4, 3), np.uint8),
...             test_y=np.array([0, 1, 2, 3]))
>>> p = class_split('toy', pool, 'domain')
>>> p.num_tasks, p.num_outputs, p.task_classes
(2, 2, [[0, 1], [2, 3]])
>>> active_table('class', [[0, 1], [2, 3]])[0, 1].tolist()
[True, True, False, False]
"""

from typing import Callable, NamedTuple

import jax.numpy as jnp
import numpy as np

from jcl.core import taskdata as data_lib
from jcl.core.errors import ConfigError, DataError
from jcl.core.taskdata import TaskData

SCENARIOS = ('task', 'domain', 'class')


def pixels(x):
    """``prepare`` of pixel protocols: uint8 -> float32 in [0, 1]."""
    return x.astype(jnp.float32) / 255.0


class Protocol(NamedTuple):
    """A task sequence in one scenario: data plus the active-output table.

    Attributes:
      name: e.g. ``'split-mnist'``. scenario: ``'task'|'domain'|'class'``.
      train, test: :class:`jcl.core.taskdata.TaskData`.
      active: bool ``[T, T, C]``, see :class:`jcl.core.records.TaskCtx`.
      input_shape: shape of one prepared input, e.g. ``(784,)``.
      num_outputs: ``C``.
      prepare: raw inputs ``[B, ...]`` -> model inputs (jnp, traced).
      valid: a validation split held out from the training data (for
        choosing hyperparameters), or ``None``.
      task_classes: the original class labels of each task, in output
        order (split protocols), or ``None``.
      inputs: what the prepared inputs are: ``'pixels'`` in [0, 1]
        (generators reconstruct them with a Bernoulli likelihood) or
        ``'features'`` of a frozen front end, unbounded (a Gaussian one:
        the squared error, the BI-R paper's internal replay).
      own: bool ``[T, C]``, the units of each task's own classes, or
        ``None``. A Class-IL run is also scored on them (the same
        networks, each example's arg-max over its task's units: the
        Task-IL column of DER's and mammoth's tables).
    """

    name: str
    scenario: str
    train: TaskData
    test: TaskData
    active: np.ndarray
    input_shape: tuple
    num_outputs: int
    prepare: Callable = pixels
    valid: TaskData | None = None
    task_classes: list | None = None
    inputs: str = 'pixels'
    own: np.ndarray | None = None

    @property
    def num_tasks(self) -> int:
        return int(self.active.shape[0])

    @property
    def classes_per_task(self) -> int:
        """Classes of one task (the units active for task 1's data after
        task 1, in every scenario)."""
        return int(np.asarray(self.active)[0, 0].sum())


CLASS_OUTPUTS = ('seen', 'all')


def active_table(scenario: str, task_outputs: list,
                 class_outputs: str = 'seen') -> np.ndarray:
    """The ``[T, T, C]`` active-output table of a scenario.

    Args:
      scenario: ``'task'``, ``'domain'`` or ``'class'``.
      task_outputs: for each task, the output units of its classes (for
        Domain-IL all tasks share the same units).
      class_outputs: Class-IL's active units: ``'seen'``, the classes of
        the tasks so far (the BI-R paper's code), or ``'all'``,
        every unit from the first task on (the NMI 2022 code's default,
        ``--active-classes=all``).

    Returns:
      Task-IL: ``active[i, j]`` = units of task ``j``; Domain-IL: all
      units; Class-IL: units of tasks ``0..i`` (or all units).
    """
    check_scenario(scenario)
    if class_outputs not in CLASS_OUTPUTS:
        raise ConfigError(f'unknown class outputs {class_outputs!r}; '
                          f'choose one of {", ".join(CLASS_OUTPUTS)}')
    own = own_units(task_outputs)
    num_tasks = len(task_outputs)
    if scenario == 'task':
        return np.broadcast_to(own[None], (num_tasks,) + own.shape).copy()
    if scenario == 'domain':
        return np.ones((num_tasks,) + own.shape, bool)
    seen = np.cumsum(own, axis=0) > 0
    if class_outputs == 'all':
        seen = np.ones_like(seen)
    return np.broadcast_to(seen[:, None], (num_tasks,) + own.shape).copy()


def own_units(task_outputs: list) -> np.ndarray:
    """bool ``[T, C]``: ``own[t, u]`` when unit ``u`` is one of task
    ``t``'s outputs."""
    size = max(max(u) for u in task_outputs) + 1
    own = np.zeros((len(task_outputs), size), bool)
    for t, units in enumerate(task_outputs):
        own[t, units] = True
    return own


def check_scenario(scenario: str):
    if scenario not in SCENARIOS:
        raise ConfigError(f'unknown scenario {scenario!r}; choose one of '
                          f'{", ".join(SCENARIOS)}')


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


def class_split(name, arrays, scenario, *, classes_per_task=2,
                class_order=None, prepare=pixels, flatten=True,
                class_outputs='seen') -> Protocol:
    """A split protocol (split MNIST, split Fashion-MNIST, split CIFAR).

    Args:
      name: protocol name. arrays: dict with ``train_x``, ``train_y``,
        ``test_x``, ``test_y`` (uint8 images, integer labels).
      scenario: ``'task'``, ``'domain'`` or ``'class'``.
      classes_per_task: classes in each task.
      class_order: the classes in task order (default ``0, 1, 2, ...``:
        the papers' fixed order); ``class_order[k]`` gets output unit
        ``k`` (Task-/Class-IL) or ``k % classes_per_task`` (Domain-IL).
      prepare: the protocol's preprocessing of raw inputs.
      flatten: store each image as one vector (MLPs); ``False`` keeps
        its shape (convolutional models).
      class_outputs: Class-IL's active units (see :func:`active_table`).

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
        x = np.asarray(x)
        return TaskData(
            images=x.reshape(len(x), -1) if flatten else x,
            labels=target.astype(np.int32), index=index, count=count,
            origin=origin, offset=np.zeros(num_tasks, np.int32), perm=None)

    train = split(arrays['train_x'], arrays['train_y'])
    return Protocol(name, scenario, train,
                    split(arrays['test_x'], arrays['test_y']),
                    active_table(scenario, outputs, class_outputs),
                    tuple(train.images.shape[1:]),
                    len(set(sum(outputs, []))), prepare,
                    task_classes=task_classes.tolist(),
                    own=own_units(outputs))


def permuted(name, arrays, scenario, *, num_tasks=10, seed=0, pad_to=32,
             first_identity=True, class_outputs='seen') -> Protocol:
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
                    active_table(scenario, outputs, class_outputs), (size,),
                    len(set(sum(outputs, []))), own=own_units(outputs))


def with_validation(protocol: Protocol, fraction: float,
                    seed: int = 0) -> Protocol:
    """The protocol trained on ``1 - fraction`` of the training data, with
    the rest as ``protocol.valid`` (the test set is untouched)."""
    train, valid = data_lib.holdout(protocol.train, fraction, seed)
    return protocol._replace(train=train, valid=valid)
