"""Metric logs of a sweep: loss curves, learning rate, throughput,
accuracies and replayed samples, written between compiled chunks.

The compiled programs return every step's loss terms (they hold no host
callback); :class:`GroupLog` turns them, on the host between chunks, into
one logged point every ``every`` steps (the mean over those steps; a
point also at each task's end), per row (seed, grid point), and writes
each to every writer (:mod:`jcl.logs.writers`). After each task it logs
the accuracy on every task trained so far, their average and the task's
seconds, and for generative models a grid of decoded samples (a row per
class seen so far). Steps are counted over the whole run (task ``t``'s
steps follow those of tasks ``1..t-1``).

>>> import tempfile, numpy as np
>>> folder = tempfile.mkdtemp()
>>> log = MetricLog.open('csv', folder, every=2)
>>> g = log.group(['seed0', 'seed1'], lr=np.array([1e-3, 1e-2]))
>>> g.start_task(0, offset=0)
>>> g.chunk({'loss': np.array([[4., 2., 1.], [1., 1., 1.]])}, done=3)
>>> g.end_task(np.array([[0.9, 0.1], [0.8, 0.2]]), seconds=1.0)
>>> log.close()
>>> print(open(folder + '/steps.csv').read().split()[:3])
['row,step,loss/total,lr,throughput/steps_per_s', 'seed0,2,3.0,0.001,...', \
'seed1,2,1.0,0.01,...']
"""

import importlib.util
import os
import time

import numpy as np

from jcl.core.errors import ConfigError
from jcl.logs import writers as writers_lib

KINDS = ('csv', 'tensorboard', 'wandb')


def parse_kinds(text: str) -> list:
    """``'csv,tensorboard'`` -> ``['csv', 'tensorboard']``; ``'none'`` or
    ``''``: no logs. Unknown names are a :class:`ConfigError`."""
    got = [k.strip() for k in (text or '').split(',') if k.strip()]
    if got in (['none'], []):
        return []
    bad = [k for k in got if k not in KINDS]
    if bad:
        raise ConfigError(f'--log {text!r}: unknown {", ".join(bad)}; '
                          f'choose from {", ".join(KINDS)} or none')
    return list(dict.fromkeys(got))


def log_settings(kinds: str, every: int) -> dict:
    """``--log`` and ``--log-every`` checked: ``{'log': [...],
    'log_every': n}`` (they change no number, so a run may resume with
    others)."""
    got = parse_kinds(kinds)
    if 'wandb' in got and importlib.util.find_spec('wandb') is None:
        raise ConfigError("--log wandb needs the wandb package: pip install "
                          "'jcl[wandb]'")
    if every < 1:
        raise ConfigError(f'--log-every must be >= 1, got {every}')
    return {'log': got, 'log_every': int(every)}


class MetricLog:
    """The writers of a run's metric logs and how often to log.

    Args:
      writers: objects with the calls of :mod:`jcl.logs.writers`; none
        (e.g. on processes other than the first): nothing is written.
      every: log a point every this many steps (the mean over them).
      samples: per class, the decoded samples logged after each task by
        generative models (0: none).
      images: whether the samples are drawn; ``None``: where a writer
        takes images (TensorBoard, W&B).
    """

    def __init__(self, writers=(), every: int = 10, samples: int = 8,
                 images: bool | None = None):
        if int(every) < 1:
            raise ConfigError(f'--log-every must be >= 1, got {every}')
        self.writers, self.every = list(writers), int(every)
        self.samples = int(samples)
        if images is None:
            images = any(not isinstance(w, writers_lib.CsvWriter)
                         for w in self.writers)
        self.images = bool(images) and self.samples > 0

    @classmethod
    def open(cls, kinds, folder: str, *, every: int = 10, group: str = '',
             config: dict | None = None, samples: int = 8,
             main: bool = True) -> 'MetricLog':
        """Writers for ``kinds`` (a list or ``'csv,tensorboard'``) under
        ``folder``: ``steps.csv``/``tasks.csv``, ``tensorboard/<row>/``,
        ``wandb/`` (``group``, ``config``: the W&B runs' group and
        configuration). ``main=False`` (a process other than the first):
        the same log without writers, so that every process draws the
        samples together."""
        kinds = parse_kinds(kinds) if isinstance(kinds, str) else kinds
        images = any(k != 'csv' for k in kinds)
        made = []
        for kind in kinds if main else []:
            if kind == 'csv':
                made.append(writers_lib.CsvWriter(folder))
            elif kind == 'tensorboard':
                made.append(writers_lib.TensorBoardWriter(
                    os.path.join(folder, 'tensorboard')))
            elif kind == 'wandb':
                made.append(writers_lib.WandbWriter(folder, group, config))
        for kind in kinds:
            parse_kinds(kind)   # an unknown kind raises
        return cls(made, every, samples, images)

    def group(self, rows, lr, image_rows=(0,)) -> 'GroupLog':
        """The log of one group of rows trained together (``rows``: their
        names; ``lr``: ``[len(rows)]`` learning rates; ``image_rows``: the
        rows whose samples are logged)."""
        return GroupLog(self, list(rows), np.asarray(lr, np.float64),
                        tuple(image_rows))

    def write(self, call, *args):
        for w in self.writers:
            getattr(w, call)(*args)

    def close(self):
        self.write('close')


class GroupLog:
    """What a group's training loop reports; rows beyond ``rows`` (the
    padding of a device mesh) are ignored."""

    def __init__(self, log: MetricLog, rows: list, lr: np.ndarray,
                 image_rows=(0,)):
        self.log, self.rows, self.lr = log, rows, lr
        self.image_rows = [i for i in image_rows if i < len(rows)]
        self.every, self._purged = log.every, False
        self.task, self.offset, self.done = 0, 0, 0
        self.pending, self.clock, self.rate = {}, time.time(), 0.0

    @property
    def wants_images(self) -> bool:
        return self.log.images and bool(self.image_rows)

    def start_task(self, task: int, offset: int, done: int = 0,
                   curves: dict | None = None):
        """Task ``task`` starts (or resumes after ``done`` of its steps,
        ``curves`` those steps' ``[rows, done]`` curves); its first step
        is the run's step ``offset + 1``. The first call forgets what the
        rows logged after this point (a resumed run logs it again)."""
        self.task, self.offset, self.done = task, offset, done
        if not self._purged:
            self.log.write('purge', self.rows, offset + done)
            self._purged = True
        last = max(offset, (offset + done) // self.every * self.every)
        self.pending = {k: np.asarray(v)[:len(self.rows), last - offset:done]
                        for k, v in (curves or {}).items()}
        self.clock = time.time()

    def chunk(self, curves: dict, done: int):
        """The curves ``[rows, steps]`` of the task's steps up to
        ``done``."""
        now = time.time()
        rate = (done - self.done) / max(now - self.clock, 1e-9)
        self.clock, self.done, self.rate = now, done, rate
        n = len(self.rows)
        for k, v in curves.items():
            v = np.asarray(v)[:n]
            old = self.pending.get(k)
            self.pending[k] = v if old is None else np.concatenate(
                [old, v], -1)
        start = self.offset + done - self._width()
        points = [s for s in range(start + 1, self.offset + done + 1)
                  if s % self.every == 0]
        self._emit(points, start, rate)
        self.log.write('flush')   # on disk before a checkpoint follows

    def _width(self):
        return next(iter(self.pending.values())).shape[-1] if \
            self.pending else 0

    def _emit(self, points, start, rate):
        for end in points:
            cut = end - start
            means = {k: v[:, :cut].mean(-1) for k, v in self.pending.items()}
            self.pending = {k: v[:, cut:] for k, v in self.pending.items()}
            start = end
            for i, row in enumerate(self.rows):
                values = {_tag(k): m[i] for k, m in means.items()}
                if 'lr' not in values:
                    values['lr'] = self.lr[i]
                values['throughput/steps_per_s'] = rate
                self.log.write('scalars', row, end, values, 'step')

    def end_task(self, R_row, seconds: float, images: dict | None = None):
        """After the task: ``R_row`` ``[rows, tasks]`` accuracies on every
        task's test set (the accuracy matrix's row; ``average``: over the
        tasks trained so far), the task's seconds, ``{row: pixels}``
        samples."""
        if self._width():   # the last steps of the task: one more point
            self._emit([self.offset + self.done],
                       self.offset + self.done - self._width(), self.rate)
        step, t = self.offset + self.done, self.task
        R_row = np.asarray(R_row)
        for i, row in enumerate(self.rows):
            values = {f'accuracy/task{j + 1}': R_row[i, j]
                      for j in range(R_row.shape[1])}   # the R row
            values['accuracy/average'] = R_row[i, :t + 1].mean()
            values.update({'task': t + 1, 'seconds': seconds})
            self.log.write('scalars', row, step, values, 'task')
        for row, pixels in (images or {}).items():
            self.log.write('image', row, step, 'samples', pixels)
        self.log.write('flush')


def _tag(key):
    if key == 'lr':
        return key
    return 'loss/total' if key == 'loss' else f'loss/{key}'
