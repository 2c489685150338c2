"""Sources: how the streamed path reads a split from the host, and
scores a model over one in host chunks (:func:`evaluate_streamed`).

A source is anything with ``count`` (int ``[T]``, examples per task) and
``gather(task, entries) -> Batch`` of numpy arrays (``entries`` of any
shape, e.g. ``[K, B]``): a :class:`jcl.core.taskdata.TaskData` wrapped in
:class:`ArraySplit`, or a split of
:func:`jcl.datasets.image_folders.open_image_tasks`.

>>> import numpy as np
>>> from jcl.tasks.protocols import class_split
>>> pool = dict(train_x=np.arange(8, dtype=np.uint8).reshape(4, 2),
...             train_y=np.arange(4), test_x=np.zeros((4, 2), np.uint8),
...             test_y=np.arange(4))
>>> source = as_source(class_split('toy', pool, 'class').train)
>>> source.count.tolist(), source.gather(1, [[0], [1]]).y.tolist()
([2, 2], [[2], [3]])
"""

import functools

import jax
import numpy as np

from jcl.analysis.evaluate import correct_of
from jcl.core import taskdata as data_lib
from jcl.core.errors import ConfigError
from jcl.core.records import Batch
from jcl.training.learner import Learner
from jcl.training.task import scores_fn


def gather_host(data: data_lib.TaskData, task: int, entries) -> Batch:
    """Raw examples of task entries, gathered on the host (numpy)."""
    pos = np.asarray(data.index)[task, entries]
    origin = np.asarray(data.origin)[task, entries]
    x = np.asarray(data.images)[pos]
    if data.perm is not None:
        x = np.take_along_axis(x, np.asarray(data.perm)[origin], axis=-1)
    y = np.asarray(data.labels)[pos] + np.asarray(data.offset)[origin]
    return Batch(x, y.astype(np.int32), origin.astype(np.int32))


class ArraySplit:
    """A :class:`jcl.core.taskdata.TaskData` as a source
    (:func:`gather_host`)."""

    def __init__(self, data: data_lib.TaskData):
        self.data = data
        self.count = np.asarray(data.count)

    def gather(self, task, entries) -> Batch:
        return gather_host(self.data, int(task), np.asarray(entries))


def as_source(split):
    """``split`` as a source: a TaskData wrapped, a source as it is."""
    if isinstance(split, data_lib.TaskData):
        return ArraySplit(split)
    if hasattr(split, 'count') and hasattr(split, 'gather'):
        return split
    raise ConfigError(f'a split must be a TaskData or have count and '
                      f'gather, not {type(split).__name__}')


def correct(learner, state, hp, raw, active_row):
    """Hits ``[B]`` of one row's model on a raw host batch."""
    scores = scores_fn(learner, hp, state)
    batch = raw._replace(x=learner.prepare(raw.x))
    return correct_of(scores(batch.x, batch.task), batch, active_row)


@functools.lru_cache(maxsize=None)
def evaluate_rows(learner: Learner):
    """Jitted :func:`correct` over the rows, for several active rows
    ``[I, T, C]`` at once (one forward pass): hits ``[S, I, B]``."""
    rows = jax.vmap(functools.partial(correct, learner),
                    in_axes=(None, None, None, 0))
    return jax.jit(jax.vmap(rows, in_axes=(0, 0, None, None)))


def evaluate_streamed(evaluate, state, hp, test, active_row, chunk,
                      tasks=None):
    """Accuracy ``[S, T]`` on every task (or on ``tasks``) from host
    chunks of ``test`` (a source or a TaskData), each padded to one shape;
    ``[S, I, T]`` with :func:`evaluate_rows` and ``I`` active rows. A
    task without examples scores ``nan``."""
    test = as_source(test)
    count = np.asarray(test.count)
    width = max(1, min(chunk, int(count.max(initial=0))))
    acc = []
    for t in (range(len(count)) if tasks is None else tasks):
        n, parts = int(count[t]), []
        for lo in range(0, n, width):
            k = min(width, n - lo)
            raw = test.gather(t, lo + np.arange(width) % k)
            parts.append((evaluate(state, hp, raw, active_row), k))
        hits = sum(np.asarray(h)[..., :k].sum(-1, np.float64)
                   for h, k in parts)
        acc.append(hits / n if n else np.nan)
    return np.stack(np.broadcast_arrays(*acc), -1)
