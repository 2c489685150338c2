"""Epochs of a streamed task: the schedule, the plan of steps, and
per-epoch validation of vmapped rows (the best epoch, early stopping).

CLR's reference (``main.py`` of gyhandy/Channel-wise-Lightweight-
Reprogramming) evaluates the model on the task's validation split after
every epoch, keeps the state of the epoch with the best accuracy (a
strictly better accuracy replaces it, so a tie keeps the earlier epoch)
and stops once ``epoch - best_epoch > 21``, i.e. 22 epochs after the
last improvement. Here every row (seed, grid point) of a vmapped carry
has its own best epoch and its own stop; :class:`EpochTracker` keeps
that bookkeeping on the host and
:func:`jcl.training.epoch_loop.keep_rows` copies the chosen rows of a
carry on the device. A row that has stopped keeps what it had, so each
row ends as it would have run alone; the loop over a task's epochs is
:func:`jcl.training.epoch_loop.run_epochs`.

Epochs are 0-based here.

>>> import numpy as np
>>> tracker = EpochTracker(rows=2, epochs=8, patience=2)
>>> for epoch, acc in enumerate([[.1, .5], [.3, .4], [.3, .4], [.2, .6],
...                               [.1, .6]]):
...     take = tracker.update(epoch, np.asarray(acc))
>>> tracker.best_epoch.tolist(), tracker.epochs.tolist()
([1, 3], [5, 5])
>>> tracker.stopped.tolist()        # row 0: 4 - 1 > 2; row 1 runs on
[True, False]
>>> tracker.update(5, np.asarray([.9, .7])).tolist()   # row 0 is frozen
[False, True]
"""

from typing import NamedTuple

import numpy as np

from jcl.core.errors import ConfigError

REFERENCE_PATIENCE = 21   # the reference stops once epoch - best > 21


class Schedule(NamedTuple):
    """How a streamed task is trained.

    Attributes:
      epochs: passes over the task's training data (at most, with
        ``patience``).
      batch_size: examples per step; an epoch's last, incomplete batch is
        dropped (shapes stay static).
      decay_every: the learning rate is multiplied by ``decay`` every
        this many epochs (``None``: constant): epoch ``e`` (0-based) uses
        ``lr * decay ** (e // decay_every)``, PyTorch's ``StepLR`` stepped
        once per epoch.
      decay: the step decay factor.
      select_best: validate after every epoch and end the task with the
        state of each row's best epoch (strictly better accuracy replaces
        it: a tie keeps the earlier epoch).
      patience: validate after every epoch and stop a row after epoch
        ``e`` once ``e - best_epoch > patience`` (CLR's reference: 21, i.e.
        22 epochs after the last improvement); ``None``: never stop early.
        Without ``select_best`` a stopped row keeps its state at its stop.
      max_steps: train at most this many steps of each task (``None``: no
        cap). A cut epoch after complete ones is not validated; a cut first
        epoch is, as if it were complete.
    """

    epochs: int
    batch_size: int
    decay_every: int | None = None
    decay: float = 0.1
    select_best: bool = False
    patience: int | None = None
    max_steps: int | None = None


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


def check_schedule(schedule: Schedule, num_tasks, valid_count=None):
    """Raises :class:`ConfigError` for a schedule that cannot run on
    ``num_tasks`` tasks with this validation split (``valid_count``:
    examples per task, ``None``: no split)."""
    if schedule.max_steps is not None and schedule.max_steps < 1:
        raise ConfigError(f'max_steps must be >= 1: {schedule.max_steps}')
    if schedule.patience is not None and schedule.patience < 0:
        raise ConfigError(f'patience must be >= 0: {schedule.patience}')
    if valid_count is None:
        if schedule.select_best or schedule.patience is not None:
            raise ConfigError('select_best and patience need a validation '
                              'split (valid=)')
        return
    count = np.asarray(valid_count)
    if len(count) != num_tasks or (count < 1).any():
        raise ConfigError(f'the validation split needs examples of each '
                          f'of the {num_tasks} tasks (it has '
                          f'{count.tolist()})')


class EpochTracker:
    """Best epoch and early stop of each row, from per-epoch accuracies.

    Args:
      rows: the number of vmapped rows.
      epochs: the most epochs a task may run (the length of the curve).
      patience: a row stops after epoch ``e`` once ``e - best_epoch >
        patience`` (the reference: :data:`REFERENCE_PATIENCE`); ``None``:
        never.
      select_best: what :meth:`update` asks to keep: the state of a
        row's best epoch (``True``) or its latest state until it stops.

    Attributes:
      best_acc: ``[rows]`` the best accuracy so far (``-inf`` before the
        first epoch, so the first epoch always sets it).
      best_epoch: int ``[rows]`` its epoch (``-1`` before the first).
      stopped: bool ``[rows]`` rows that have stopped.
      epochs: int ``[rows]`` epochs each row has been validated on.
      curve: ``[rows, epochs]`` each row's validation accuracy per epoch,
        ``nan`` where the row did not run.
    """

    def __init__(self, rows, epochs, patience=None, select_best=True):
        self.patience, self.select_best = patience, select_best
        self.best_acc = np.full(rows, -np.inf)
        self.best_epoch = np.full(rows, -1, np.int32)
        self.stopped = np.zeros(rows, bool)
        self.epochs = np.zeros(rows, np.int32)
        self.curve = np.full((rows, epochs), np.nan)

    def update(self, epoch, acc):
        """Records epoch ``epoch``'s accuracies ``acc`` (``[rows]``).

        Returns:
          bool ``[rows]``: the rows whose kept state becomes this epoch's
          (rows that have not stopped and, with ``select_best``, improved
          strictly).
        """
        acc = np.asarray(acc, np.float64)
        live = ~self.stopped
        better = live & (acc > self.best_acc)
        self.best_acc = np.where(better, acc, self.best_acc)
        self.best_epoch = np.where(better, epoch, self.best_epoch
                                   ).astype(np.int32)
        self.curve[live, epoch] = acc[live]
        self.epochs = np.where(live, epoch + 1, self.epochs).astype(np.int32)
        if self.patience is not None:
            self.stopped |= live & (epoch - self.best_epoch > self.patience)
        return better if self.select_best else live

    def line(self, acc=None) -> str:
        """A progress line: the rows' accuracies ``acc`` (or epochs run)
        and best epochs, 1-based."""
        first = (f'valid acc {_rows(100 * np.asarray(acc), "{:.1f}".format)}'
                 f'%' if acc is not None else
                 f'epochs {_rows(self.epochs, str)}')
        return (f'{first}  best epoch {_rows(self.best_epoch + 1, str)}  '
                f'stopped {int(self.stopped.sum())}/{len(self.stopped)}')

    FIELDS = ('best_acc', 'best_epoch', 'stopped', 'epochs', 'curve')

    def arrays(self) -> dict:
        """The tracker's state as arrays (for a checkpoint)."""
        return {f: getattr(self, f) for f in self.FIELDS}

    def restore(self, arrays: dict) -> 'EpochTracker':
        """Sets the state :meth:`arrays` gave; returns ``self``."""
        for f in self.FIELDS:
            setattr(self, f, np.array(arrays[f], getattr(self, f).dtype))
        return self

    @property
    def done(self) -> bool:
        """Every row has stopped."""
        return bool(self.stopped.all())


def _rows(values, fmt):
    return ', '.join(fmt(v) for v in values)

