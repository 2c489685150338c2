"""The loop over a streamed task's epochs: steps, validation after each
epoch, the rows' best states, and checkpoints inside the task.

:func:`run_epochs` runs a task's steps in calls of ``run_steps``,
validates after every epoch (:class:`jcl.training.epochs.EpochTracker`),
keeps each row's chosen state (:func:`keep_rows`) and, where a saver is
due, checkpoints between calls: the carry, the kept states, the
tracker, the steps done and their losses. Started again from such a
checkpoint it ends as an uninterrupted run does, because a task's
epochs are a pure function of the seed and the task
(:func:`jcl.training.epochs.epoch_plan`): only the position is needed.

>>> import numpy as np
>>> def steps(state, lo, hi):     # the loss of step s is s
...     return state + (hi - lo), [(np.arange(lo, hi)[None] * 1.0, hi - lo)]
>>> done = run_epochs(steps, None, 0, per_epoch=4, steps=10, every=3)
>>> done.state, done.loss.tolist(), done.steps.tolist()
(10, [[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]], [10])
"""

import functools
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


@functools.partial(jax.jit, donate_argnums=2)
def keep_rows(take, new, old):
    """Row ``i`` of ``new`` where ``take[i]``, else of ``old`` (trees with
    a leading row axis). ``old`` (not aliasing ``new``) is donated, so a
    kept best epoch costs one copy of the carry, not two: gigabytes for
    whole-network banks (``separate``, SupSup).

    >>> keep_rows(jnp.array([True, False]), jnp.ones(2), jnp.zeros(2)).tolist()
    [1.0, 0.0]
    """
    def pick(a, b):
        mask = jnp.reshape(take, take.shape + (1,) * (a.ndim - 1))
        return jnp.where(mask, a, b)
    return jax.tree.map(pick, new, old)


class EpochsDone(NamedTuple):
    """A task trained by :func:`run_epochs`.

    Attributes:
      state: the carry to consolidate: per row, its best epoch's state
        (``select_best``), its state at its stop, or its last state.
      loss: ``[rows, steps]`` the loss of every step run, 0 after a row's
        stop.
      steps: int ``[rows]`` steps each row trained.
      tracker: the :class:`EpochTracker`, or ``None`` without validation.
    """

    state: object
    loss: np.ndarray
    steps: np.ndarray
    tracker: object


class Resume(NamedTuple):
    """Where an in-task checkpoint left a task: ``done`` steps run, the
    rows' ``kept`` states (``None`` before the first validation) and the
    ``[rows, done]`` losses so far (the carry and the tracker are restored
    by the caller)."""

    done: int
    kept: object
    loss: np.ndarray


def run_epochs(run_steps, validate, state, *, per_epoch, steps,
               tracker=None, on_epoch=None, every=None, saver=None,
               resume: Resume | None = None) -> EpochsDone:
    """Runs a task's ``steps`` steps, validating after every epoch.

    Args:
      run_steps: ``(state, lo, hi) -> (state, pieces)`` runs steps ``lo``
        to ``hi`` of the task's plan; ``pieces``: a list of ``(loss, k)``,
        the first ``k`` columns of each ``[rows, K]`` loss array real.
      validate: ``state -> [rows]`` accuracies on the task's validation
        split (used with a ``tracker``).
      state: the carry at the task's first step (or at ``resume``).
      per_epoch: steps of one epoch. steps: steps to run (``max_steps``
        may cut the last epoch).
      tracker: an :class:`EpochTracker` (``None``: no validation).
      on_epoch: ``(epoch, acc, seconds)`` after each validated epoch.
      every: steps per call of ``run_steps`` between the chances to
        checkpoint inside an epoch (``None``: a call per epoch).
      saver: ``saver.due(done) -> bool`` and ``saver(done, state, kept,
        loss)``, asked at every chance (after a validated epoch's
        bookkeeping, or between calls), or ``None``.
      resume: a :class:`Resume` (``state`` and ``tracker`` restored), or
        ``None``: the task starts.
    """
    ends = [steps] if tracker is None else (
        list(range(per_epoch, steps, per_epoch)) + [steps])
    kept, lo, pieces = None, 0, []
    if resume is not None:
        kept, lo = resume.kept, resume.done
        pieces = [(resume.loss, resume.done)]

    def chance(state, kept):
        if saver is not None and lo < steps and saver.due(lo):
            saver(lo, state, kept, _losses(pieces))

    for epoch, hi in enumerate(ends):
        if hi <= lo:
            continue   # before the checkpoint resumed from
        first, t0 = (ends[epoch - 1] if epoch else 0), time.time()
        while lo < hi:
            nxt = hi if every is None else min(hi, lo + every)
            state, new = run_steps(state, lo, nxt)
            pieces, lo = pieces + new, nxt
            if lo < hi:
                chance(state, kept)
        if tracker is None or (hi - first < per_epoch and epoch > 0):
            chance(state, kept)
            continue   # a cut epoch after complete ones: not validated
        acc = validate(state)
        if kept is None:   # a distinct buffer: ``state`` goes on training
            kept = jax.tree.map(jnp.copy, state)
        kept = keep_rows(tracker.update(epoch, acc), state, kept)
        if on_epoch is not None:
            on_epoch(epoch, acc, time.time() - t0)
        if tracker.done:
            break
        chance(state, kept)
    loss = _losses(pieces)
    done = np.full(loss.shape[0], lo, np.int32)
    if tracker is not None:
        done = np.where(tracker.stopped, tracker.epochs * per_epoch, done)
        if tracker.select_best:
            state = kept
        elif tracker.patience is not None:
            state = keep_rows(tracker.stopped, kept, state)
    loss = np.where(np.arange(lo) < done[:, None], loss, 0.0)
    return EpochsDone(state, loss, done.astype(np.int32), tracker)


def _losses(pieces):
    return np.concatenate([np.asarray(m)[:, :k] for m, k in pieces], 1)
