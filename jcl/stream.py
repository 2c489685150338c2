"""Host-streamed training: epochs of host-prepared batches, K steps per
compiled call.

For data that does not live on the device (large images, long task
sequences) the host draws each task's epochs (shuffled without
replacement), gathers the raw examples of ``K`` steps at a time and
feeds them to :func:`jcl.train.train_chunk`, the same compiled step as the
fused path; the learning rate follows a step schedule, passed per step
(no recompilation); evaluation runs in chunks of host batches too.

>>> import numpy as np
>>> plan = epoch_plan(count=10, schedule=Schedule(epochs=2, batch_size=4),
...                   rng=np.random.RandomState(0))
>>> plan.index.shape, plan.lr_scale.tolist()
((4, 4), [1.0, 1.0, 1.0, 1.0])
>>> sorted(plan.index[:2].ravel().tolist()) == sorted(set(
...     plan.index[:2].ravel().tolist()))      # no repeats in an epoch
True
"""

import functools
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jcl import data as data_lib
from jcl.errors import ConfigError
from jcl.evaluate import correct_of
from jcl.learner import Learner, begin_task, init_state
from jcl.runner import RunResult
from jcl.train import finish_task, scores_fn, train_chunk
from jcl.types import Batch


class Schedule(NamedTuple):
    """How a streamed task is trained.

    Attributes:
      epochs: passes over the task's training data.
      batch_size: examples per step; an epoch's last, incomplete batch is
        dropped (shapes stay static).
      decay_every: the learning rate is multiplied by ``decay`` every
        this many epochs (``None``: constant).
      decay: the step decay factor.
    """

    epochs: int
    batch_size: int
    decay_every: int | None = None
    decay: float = 0.1


class EpochPlan(NamedTuple):
    """A task's steps: ``index[s]`` the task entries of step ``s``
    (``[S, B]``), ``lr_scale[s]`` its learning-rate multiplier."""

    index: np.ndarray
    lr_scale: np.ndarray


def epoch_plan(count: int, schedule: Schedule, rng) -> EpochPlan:
    """Shuffled epochs over ``count`` examples (without replacement
    within an epoch), cut into full batches."""
    per_epoch = count // schedule.batch_size
    if per_epoch < 1:
        raise ConfigError(f'a task of {count} examples has no full batch '
                          f'of {schedule.batch_size}')
    index, scale = [], []
    for epoch in range(schedule.epochs):
        order = rng.permutation(count)[:per_epoch * schedule.batch_size]
        index.append(order.reshape(per_epoch, schedule.batch_size))
        k = epoch // schedule.decay_every if schedule.decay_every else 0
        scale += [schedule.decay ** k] * per_epoch
    return EpochPlan(np.concatenate(index).astype(np.int32),
                     np.asarray(scale, np.float32))


def gather_host(data: data_lib.TaskData, task: int, entries) -> Batch:
    """Raw examples of task entries, gathered on the host (numpy)."""
    pos = np.asarray(data.index)[task, entries]
    origin = np.asarray(data.origin)[task, entries]
    x = np.asarray(data.images)[pos]
    if data.perm is not None:
        x = np.take_along_axis(x, np.asarray(data.perm)[origin], axis=-1)
    y = np.asarray(data.labels)[pos] + np.asarray(data.offset)[origin]
    return Batch(x, y.astype(np.int32), origin.astype(np.int32))


@functools.lru_cache(maxsize=None)
def _compiled(learner: Learner):
    init = jax.jit(jax.vmap(functools.partial(init_state, learner)))
    begin = jax.jit(jax.vmap(functools.partial(begin_task, learner),
                             in_axes=(0, 0, None)))
    chunk = jax.jit(jax.vmap(functools.partial(train_chunk, learner),
                             in_axes=(0, 0, None, 0, None, None, None,
                                      None)),
                    donate_argnums=0)
    finish = jax.jit(jax.vmap(functools.partial(finish_task, learner),
                              in_axes=(0, 0, None, None, None, None)))

    def correct(state, hp, raw, active_row):
        scores = scores_fn(learner, hp, state)
        batch = raw._replace(x=learner.prepare(raw.x))
        return correct_of(scores(batch.x, batch.task), batch, active_row)

    evaluate = jax.jit(jax.vmap(correct, in_axes=(0, 0, None, None)))
    return init, begin, chunk, finish, evaluate


def _step_keys(state, n):
    """The step keys of a task, drawn as the fused path draws them."""
    def one(key):
        _, k_steps, _ = jax.random.split(key, 3)
        _, k_loss = jax.random.split(k_steps)
        return jax.random.split(k_loss, n)
    return jax.vmap(one)(state.key)


def evaluate_streamed(evaluate, state, hp, test, active_row, chunk):
    """Accuracy ``[S, T]`` on every task, from host chunks of test data."""
    acc = []
    for t in range(int(np.asarray(test.count).shape[0])):
        n = int(np.asarray(test.count)[t])
        hits = 0.0
        for lo in range(0, n, chunk):
            entries = np.arange(lo, min(lo + chunk, n))
            raw = gather_host(test, t, entries)
            hits = hits + np.asarray(evaluate(state, hp, raw, active_row)
                                     ).sum(-1)
        acc.append(hits / n)
    return np.stack(acc, -1)


def run_streamed(learner: Learner, protocol, hp: dict, keys, schedule:
                 Schedule, *, steps_per_call=50, eval_chunk=1000,
                 shuffle_seed=0, progress=print, label='') -> RunResult:
    """Trains every task of ``protocol`` from host-streamed batches.

    Every row (seed, grid point) draws the same epochs (from
    ``shuffle_seed`` and the task); ``steps_per_call`` steps go to the
    device at once. Consolidation sees the task's training data on the
    device; evaluation streams the test data in chunks of ``eval_chunk``.

    Returns:
      A :class:`jcl.runner.RunResult` (``metrics`` per step of the
      longest task, zero-padded).
    """
    if schedule.batch_size != learner.batch_size:
        raise ConfigError('the schedule and the learner disagree on the '
                          'batch size')
    init, begin, chunk, finish, evaluate = _compiled(learner)
    hp = {k: jnp.asarray(v, jnp.float32) for k, v in hp.items()}
    active = jnp.asarray(protocol.active)
    train_dev = data_lib.to_device(protocol.train)
    state = init(hp, keys)
    R_init = np.stack([evaluate_streamed(evaluate, state, hp, protocol.test,
                                         active[i], eval_chunk)
                       for i in range(protocol.num_tasks)], 1)
    rows, metrics, seconds = [], [], []
    for t in range(protocol.num_tasks):
        t0 = time.time()
        count = int(np.asarray(protocol.train.count)[t])
        plan = epoch_plan(count, schedule,
                          np.random.RandomState([shuffle_seed, t]))
        n = len(plan.index)
        state = begin(state, hp, jnp.int32(t))
        step_keys = _step_keys(state, n)
        losses = []
        for lo in range(0, n, steps_per_call):
            k = min(steps_per_call, n - lo)
            sl = np.arange(lo, lo + steps_per_call) % n  # pad: repeat
            raw = gather_host(protocol.train, t, plan.index[sl])
            valid = np.arange(steps_per_call) < k
            state, m = chunk(state, hp, raw, step_keys[:, sl], valid,
                             plan.lr_scale[sl], active, jnp.int32(t))
            losses.append(np.asarray(m['loss'])[:, :k])
        state, _ = finish(state, hp, train_dev, None, active, jnp.int32(t))
        acc = evaluate_streamed(evaluate, state, hp, protocol.test,
                                active[t], eval_chunk)
        rows.append(acc)
        metrics.append(np.concatenate(losses, 1))
        seconds.append(time.time() - t0)
        if progress:
            progress(f'{label} task {t + 1}/{protocol.num_tasks}  {n} steps '
                     f' avg acc {100 * acc[:, :t + 1].mean():.2f}%  '
                     f'{seconds[-1]:.1f}s')
    width = max(m.shape[1] for m in metrics)
    loss = np.stack([np.pad(m, ((0, 0), (0, width - m.shape[1])))
                     for m in metrics], 1)
    R = np.stack(rows, 1)
    return RunResult(R=R, R_init=R_init, metrics={'loss': loss},
                     seconds=np.asarray(seconds))
