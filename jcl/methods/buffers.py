"""Replay buffers as pure state: fixed-size arrays in the training carry.

A :class:`Buffer` holds raw examples (uint8 pixels where the data is),
their targets and tasks, optionally logits, and which slots are filled.
It lives in a method's state, so it is vmapped over seeds, checkpointed
with the carry and filled inside the compiled step, with no host round
trip. Two selection policies fill it:

* **class-balanced** (:func:`store_task`): at the end of a task, a random
  ``per_class`` examples of each of its classes, each class in its own
  block of slots (the NMI code: 100 per class on split MNIST, 10 on
  permuted MNIST; blocks never shrink);
* **reservoir** (:func:`reservoir_add`): every example offered is kept
  with probability ``size / seen`` (Vitter's algorithm R; DER++).

>>> import jax, jax.numpy as jnp
>>> buf = empty(4, (2,), jnp.uint8)
>>> batch = Batch(jnp.arange(12, dtype=jnp.uint8).reshape(6, 2),
...               jnp.arange(6), jnp.zeros(6, jnp.int32))
>>> buf = reservoir_add(buf, batch, None, jax.random.PRNGKey(0))
>>> int(buf.seen), int(buf.valid.sum())
(6, 4)
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jcl.core.records import Array, Batch
from jcl.core.taskdata import TaskData, gather


class Buffer(NamedTuple):
    """A replay buffer of ``M`` slots.

    Attributes:
      x: ``[M, ...]`` stored raw inputs.
      y: int32 ``[M]`` their targets (task offsets applied, as gathered).
      task: int32 ``[M]`` the task each example came from.
      logits: float32 ``[M, L]`` logits stored with them (``L = 0`` when
        none are kept).
      valid: bool ``[M]`` which slots hold an example.
      seen: int32 ``[]`` examples offered so far (reservoir sampling).
    """

    x: Array
    y: Array
    task: Array
    logits: Array
    valid: Array
    seen: Array


def empty(size: int, shape: tuple, dtype=jnp.uint8, logits: int = 0):
    """A buffer of ``size`` empty slots for inputs of ``shape``."""
    return Buffer(jnp.zeros((size, *shape), dtype),
                  jnp.zeros(size, jnp.int32), jnp.zeros(size, jnp.int32),
                  jnp.zeros((size, logits), jnp.float32),
                  jnp.zeros(size, bool), jnp.int32(0))


def reservoir_add(buf: Buffer, batch: Batch, logits, key) -> Buffer:
    """Offers every example of ``batch`` (raw) to the buffer in turn.

    Example ``n`` (counting from 1 over all offers) goes to slot ``n - 1``
    while the buffer is not full, afterwards to a slot ``j`` drawn
    uniformly from ``0..n-1`` if ``j < size`` (else it is dropped), so
    every example offered is kept with probability ``size / n``.

    Args:
      buf: the buffer. batch: a raw :class:`jcl.core.records.Batch`
        ``[B, ...]``.
      logits: ``[B, L]`` logits to store with the examples, or ``None``.
      key: PRNG key.
    """
    size = buf.y.shape[0]

    def offer(buf, i):
        n = buf.seen + 1
        j = jax.random.randint(jax.random.fold_in(key, i), (), 0, n)
        slot = jnp.where(n <= size, n - 1, j)
        keep = (n <= size) | (j < size)

        def put(a, v):
            return a.at[slot].set(jnp.where(keep, v, a[slot]))

        stored = buf.logits if logits is None else put(buf.logits,
                                                       logits[i])
        return Buffer(put(buf.x, batch.x[i]), put(buf.y, batch.y[i]),
                      put(buf.task, batch.task[i]), stored,
                      put(buf.valid, True), n), None

    buf, _ = jax.lax.scan(offer, buf, jnp.arange(batch.y.shape[0]))
    return buf


def task_examples(data: TaskData, task):
    """Every entry of ``task``'s index row, gathered (raw): ``(batch
    [width, ...], ok [width])``, ``ok`` false past the task's count."""
    entries = jnp.arange(data.index.shape[1])
    batch = gather(data, data.index[task, entries], data.origin[task,
                                                                entries])
    return batch, entries < data.count[task]


def store_task(buf: Buffer, data: TaskData, task, key, *,
               classes_per_task: int, per_class: int,
               priority=None) -> Buffer:
    """Stores ``per_class`` examples of each class of ``task``: a random
    choice, or those of highest ``priority``.

    Class ``r`` of task ``t`` (its examples' targets ``y`` with
    ``y mod classes_per_task == r``, true in every scenario of a split or
    permuted protocol) fills slots ``(t * classes_per_task + r) *
    per_class`` onwards; a class with fewer examples leaves its other
    slots empty. Without ``priority`` selection is uniform without
    replacement.

    Args:
      buf: a buffer of ``num_tasks * classes_per_task * per_class`` slots.
      data: the task's training data (device resident). task: its index
        (may be traced). key: PRNG key (unused with ``priority``).
      priority: ``None``, or float ``[width]``, a score of each entry of
        the task's index row (``data.index[task]``): each class keeps its
        ``per_class`` highest (FROMP's memorable points), in decreasing
        order.
    """
    batch, ok = task_examples(data, task)
    width = ok.shape[0]
    rank = batch.y % classes_per_task
    take = min(per_class, width)
    if priority is None:
        priority = -jax.random.uniform(key, (width,))   # any order

    def one_class(r):
        mine = ok & (rank == r)
        _, j = jax.lax.top_k(jnp.where(mine, priority, -jnp.inf), take)
        return j, mine[j]

    picks, found = jax.vmap(one_class)(jnp.arange(classes_per_task))
    picks, found = picks.reshape(-1), found.reshape(-1)
    if take < per_class:  # a task smaller than one class's budget
        pad = per_class - take
        picks = jnp.pad(picks.reshape(classes_per_task, take),
                        ((0, 0), (0, pad))).reshape(-1)
        found = jnp.pad(found.reshape(classes_per_task, take),
                        ((0, 0), (0, pad))).reshape(-1)
    start = task * classes_per_task * per_class
    slots = start + jnp.arange(classes_per_task * per_class)

    def put(a, v):
        return a.at[slots].set(jnp.where(
            found.reshape((-1,) + (1,) * (v.ndim - 1)), v, a[slots]))

    return buf._replace(x=put(buf.x, batch.x[picks]),
                        y=put(buf.y, batch.y[picks]),
                        task=put(buf.task, batch.task[picks]),
                        valid=buf.valid.at[slots].set(found))


def draw(buf: Buffer, key, n: int, eligible=None):
    """``n`` distinct slots drawn uniformly from the eligible filled ones.

    Returns:
      ``(slots [n], weights [n])``: weight 0 marks a draw beyond the
      number of eligible slots.
    """
    ok = buf.valid if eligible is None else buf.valid & eligible
    scores = jnp.where(ok, jax.random.uniform(key, ok.shape), 2.0)
    neg, slots = jax.lax.top_k(-scores, n)
    return slots, (-neg < 2.0).astype(jnp.float32)


def draw_by_task(buf: Buffer, key, n: int, tasks):
    """``n`` draws split evenly over the tasks before ``tasks``: draw ``i``
    comes from task ``i mod tasks``, uniformly (with replacement) among its
    filled slots.

    The filled slots are sorted by task once per call, so each draw is an
    index into its task's run of that order (a sort of the buffer and
    ``n`` uniforms; a draw over all slots per example, as a categorical
    would, costs ``n x size`` random numbers every step).

    Returns:
      ``(slots [n], weights [n])``: weights ``1 / (tasks * n_j)`` so that
      every task contributes equally (``n_j`` draws of task ``j``; 0 where
      a task has no stored example).
    """
    t = jnp.maximum(tasks, 1)
    want = (jnp.arange(n) % t).astype(jnp.int32)
    task = jnp.where(buf.valid, buf.task, jnp.iinfo(jnp.int32).max)
    order = jnp.argsort(task, stable=True)
    ranked = task[order]
    start = jnp.searchsorted(ranked, want, side='left')
    count = jnp.searchsorted(ranked, want, side='right') - start
    u = jax.random.uniform(key, (n,))
    pick = start + jnp.minimum((u * count).astype(jnp.int32),
                               jnp.maximum(count - 1, 0))
    slots = order[jnp.minimum(pick, task.shape[0] - 1)]
    per_task = jnp.sum(jax.nn.one_hot(want, n) * 1.0, 0)[want]
    weights = jnp.where(count > 0, 1.0 / (t * per_task), 0.0)
    return slots, weights


def examples(buf: Buffer, slots) -> Batch:
    """The raw batch of the given slots."""
    return Batch(buf.x[slots], buf.y[slots], buf.task[slots])
