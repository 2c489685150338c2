"""A task as calls of one compiled chunk of steps, the host in between.

:func:`train_in_chunks` runs a task's steps as calls of one compiled
program of ``count`` steps (:func:`chunk_steps`; the same program for every
chunk of every task, with no host callback inside, so JAX's persistent
compilation cache keeps it). Between chunks the host reports progress and,
when a :class:`Saver` says so, checkpoints the carry in the middle of the
task: the carry, the task's draws (:class:`jcl.training.task.TaskPlan`),
the position and the loss curves so far. A run resumed from such a
checkpoint ends with exactly the numbers of an uninterrupted run.

>>> chunk_steps(2000), chunk_steps(30), chunk_steps(97)
(200, 3, 97)
"""

import time

import jax.numpy as jnp
import numpy as np

from jcl.sweep import distributed


def chunk_steps(n: int) -> int:
    """Steps per compiled chunk of an ``n``-step task: the divisor of ``n``
    nearest a tenth of it between a twentieth and a quarter (every chunk
    the same program), else the whole task as one chunk."""
    near = [d for d in range(max(1, -(-n // 20)), n // 4 + 1) if n % d == 0]
    return min(near, key=lambda d: abs(d - n / 10)) if near else n


class Saver:
    """When to checkpoint inside a task, and how.

    Args:
      write: ``write(done, state, plan, metrics)`` saves the carry after
        ``done`` steps (``metrics``: the curves so far, ``[..., done]``).
      every_steps: checkpoint at the first chunk end at least this many
        steps after the last checkpoint; ``None``: by time instead.
      every_seconds: without ``every_steps``, at the first chunk end at
        least this many seconds after the last checkpoint (or the task's
        start): a kill loses about this much work.
    """

    def __init__(self, write, every_steps=None, every_seconds=60.0):
        self.write, self.every_steps = write, every_steps
        self.every_seconds = every_seconds
        self.reset(0)

    def reset(self, done):
        self.last_step, self.last_time = done, time.time()

    def due(self, done) -> bool:
        if self.every_steps is not None:
            due = done - self.last_step >= self.every_steps
        else:
            due = time.time() - self.last_time >= self.every_seconds
        return bool(distributed.broadcast(int(due)))  # process 0 decides

    def __call__(self, done, state, plan, metrics):
        self.write(done, state, plan, metrics)
        self.reset(done)


def train_in_chunks(run, state, hp, train, active, t, n_steps, hook=None,
                    saver=None, resume=None):
    """The steps of task ``t`` as calls of one compiled chunk.

    One chunk is in flight while the host collects the one before; at a
    chunk end where ``saver`` is due the host waits for it and saves.

    Args:
      run: the compiled functions (:class:`jcl.sweep.rows.Programs`, or
        any object with such ``begin`` and ``steps``).
      hook: ``hook(done, curves)`` after every chunk (progress, metric
        logs): ``curves`` the chunk's ``[..., count]`` host arrays.
      saver: a :class:`Saver`, or ``None``.
      resume: ``(plan, done, metrics)`` of an in-task checkpoint (``state``
        is then its carry), or ``None``: the task starts.

    Returns:
      ``(state, plan, metrics)``: metrics as ``[..., n_steps]`` host arrays.
    """
    task_id = jnp.int32(t)
    if resume is None:
        state, plan = run.begin(state, hp, train, task_id)
        first, parts = 0, []
    else:
        plan, first, done_metrics = resume
        parts = [done_metrics]
    if saver is not None:
        saver.reset(first)
    count = chunk_steps(n_steps)
    pending = None

    def collect(done, m):
        parts.append(distributed.gather(m))
        if hook:
            hook(done, parts[-1])

    first_task = getattr(run, 'first_steps', None) if t == 0 else None
    for start in range(first, n_steps, count):
        if first_task is not None:   # replay left out of the program
            state, m = first_task(state, hp, train, active, plan,
                                  jnp.int32(start), count)
        else:
            state, m = run.steps(state, hp, train, active, task_id, plan,
                                 jnp.int32(start), count)
        if pending is not None:
            collect(*pending)
            pending = None
        done = start + count
        if saver is not None and done < n_steps and saver.due(done):
            collect(done, m)
            saver(done, state, plan, concat(parts))
        else:
            pending = (done, m)
    if pending is not None:
        collect(*pending)
    return state, plan, concat(parts)


def concat(parts):
    """Curves of consecutive chunks joined on their last axis."""
    return {k: np.concatenate([p[k] for p in parts], axis=-1)
            for k in parts[0]}
