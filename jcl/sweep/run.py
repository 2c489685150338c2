"""A sweep from Python: a learner over grid points x seeds.

:func:`run_sweep` is what ``jcl run`` does for one method in one
scenario, below the command line: every (grid point, seed) is a row; rows
train together in one vmapped program (in groups of ``seed_chunk`` seeds
per point, one after another, all groups with the same compiled program),
split over the devices of ``mesh``; with a validation split the point
with the best validation accuracy is chosen.

>>> import numpy as np
>>> from jcl import methods, protocols
>>> from jcl.tasks import catalog
>>> from jcl.methods import build_learner
>>> rng = np.random.RandomState(0)
>>> y = np.arange(80) % 4
>>> x = (rng.rand(80, 6) * 40 + 200 * (np.arange(6) == y[:, None])
...      ).astype(np.uint8)
>>> pool = dict(train_x=x, train_y=y, test_x=x, test_y=y)
>>> proto = protocols.class_split('toy', pool, 'task')
>>> result = run_sweep(
...     lambda static: build_learner(
...         proto, catalog.protocol_spec('split-mnist'), ['si'],
...         hidden=(8,), iters=20, batch=8, static_max=static),
...     proto, hparams={'lr': 1e-2, 'si.c': 1.0, 'si.xi': 0.1},
...     grid={'si.c': [0.0, 10.0]}, seeds=[0, 1], validation=0.25,
...     progress=None)
>>> result.R.shape, result.R_valid.shape   # [points, seeds, tasks, tasks]
((2, 2, 2, 2), (2, 2, 2, 2))
>>> result.points[result.chosen]['si.c'] in (0.0, 10.0)
True
"""

import os
from typing import Callable, NamedTuple

import jax
import numpy as np

from jcl.core.errors import ConfigError
from jcl.sweep.grid import choose, grid_points, rows, static_max
from jcl.sweep.loop import run_seeds
from jcl.tasks.protocols import Protocol, with_validation
from jcl.training.learner import Learner


class SweepResult(NamedTuple):
    """What a sweep measured; every array has axes ``[points, seeds]``
    first.

    Attributes:
      R: ``[P, S, T, T]`` test accuracy matrices (row ``i``: after task
        ``i + 1``).
      R_init: ``[P, S, T, T]`` of the untrained models.
      R_valid: ``[P, S, T, T]`` on the validation split, or ``None``.
      R_task: Class-IL runs: ``[P, S, T, T]`` scored with each task's own
        units, or ``None``.
      metrics: ``{term: [P, S, T, steps]}`` loss curves.
      points: the grid points, each the full ``{name: value}`` of its
        hyperparameters.
      seeds: the seeds, in order.
      chosen: index into ``points`` of the point with the best validation
        accuracy (mean over seeds, after the last task); ``None`` without
        a validation split.
      seconds: ``[T]`` seconds per task, summed over the groups (compile
        included in the first).
      extras: the streamed path's per-task records (``[P, S, ...]``), or
        ``None``.
    """

    R: np.ndarray
    R_init: np.ndarray
    R_valid: np.ndarray | None
    R_task: np.ndarray | None
    metrics: dict
    points: list
    seeds: list
    chosen: int | None
    seconds: np.ndarray
    extras: dict | None = None


def _shape(rows_flat, num_points):
    """``[P * S, ...]`` (point-major) -> ``[P, S, ...]``."""
    return None if rows_flat is None else rows_flat.reshape(
        (num_points, -1) + rows_flat.shape[1:])


def _protocols(protocol, seeds, validation):
    def one(p):
        if validation and p.valid is None:
            return with_validation(p, validation)
        return p
    if isinstance(protocol, Protocol):
        return one(protocol)
    return [one(protocol(s)) for s in seeds]


def run_sweep(make_learner, protocol, *, hparams: dict,
              grid: dict | None = None, seeds=(0,),
              seed_chunk: int | None = None, validation: float = 0.0,
              joint: bool = False, mesh=None, schedule=None,
              pretrained=None, checkpoint_dir: str | None = None,
              checkpoint_every: int | None = None,
              progress: Callable[[str], None] | None = print,
              label: str = '', metric_log=None) -> SweepResult:
    """Trains a learner for every grid point and seed; see the module doc.

    Args:
      make_learner: a :class:`jcl.training.learner.Learner`, or ``static
        -> Learner`` given the largest value of every hyperparameter over
        the rows (the shapes they share; e.g.
        :func:`jcl.methods.build_learner`'s ``static_max``).
      protocol: a :class:`jcl.tasks.protocols.Protocol`, or ``seed ->
        Protocol`` when the task order depends on the seed.
      hparams: ``{name: value}``, every hyperparameter the learner reads
        (``'lr'`` included).
      grid: ``{name: [values]}`` searched (a product, the first name
        varying slowest); ``None``: the one point ``hparams``.
      seeds: the seeds (each one PRNG key ``PRNGKey(seed)``).
      seed_chunk: seeds per compiled group (default: all at once).
      validation: hold out this fraction of each task's training data
        (a protocol without its own validation split) and choose the
        point on it.
      joint: train task ``t`` on the data of tasks ``1..t``.
      mesh: split each group's rows over this mesh's devices
        (:func:`jcl.sweep.rows.mesh_for`), or ``None``.
      schedule: a :class:`jcl.training.epochs.Schedule` to stream the
        tasks from the host in epochs (the CLR protocols), or ``None``
        for the compiled fused path.
      pretrained: leaves overlaid on every row's initialisation, or
        ``model -> overlay``
        (:func:`jcl.models.backbone.pretrained_overlay`), or ``None``.
      checkpoint_dir: a folder for each group's checkpoint after every
        task and inside tasks (``ckpt-GROUP.npz``, the one before it kept
        as ``ckpt-GROUP.prev.npz``); a sweep started again over it resumes
        where the last checkpoint left it, to the same numbers. ``None``:
        no checkpoints.
      checkpoint_every: steps between checkpoints inside a task
        (``None``: about one a minute; ``0``: only after tasks).
      progress: called with one line per finished task (``None``: quiet).
      label: prefix of the progress lines.
      metric_log: a :class:`jcl.logs.MetricLog` (loss curves, learning
        rate, throughput, accuracies and samples per row, named
        ``seed<s>``, or ``<name>=<value>,...-seed<s>`` on a grid), or
        ``None``.

    Returns:
      A :class:`SweepResult`.
    """
    grid = dict(grid or {})
    unknown = sorted(set(grid) - set(hparams))
    if unknown:
        raise ConfigError(f'grid over {", ".join(unknown)}: not a '
                          f'hyperparameter of the learner (known: '
                          f'{", ".join(sorted(hparams))})')
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ConfigError('a sweep needs at least one seed')
    points = grid_points(grid)
    all_rows = rows(hparams, points, seeds)
    chunk = (seed_chunk or len(seeds)) * len(points)
    if chunk < 1:
        raise ConfigError(f'seed_chunk must be >= 1, got {seed_chunk}')
    shared = static_max(all_rows)
    learner = (make_learner if isinstance(make_learner, Learner)
               else make_learner(shared))
    outs, names = [], row_names(points, seeds)
    for gi, start in enumerate(range(0, len(all_rows), chunk)):
        group = all_rows[start:start + chunk]
        glog = None if metric_log is None else metric_log.group(
            names[start:start + chunk], [h['lr'] for h, _ in group],
            [i for i, (_, s) in enumerate(group) if s == group[0][1]])
        group_seeds = [s for _, s in group]
        proto = _protocols(protocol, group_seeds, validation)
        keys = jax.numpy.stack([jax.random.PRNGKey(s) for s in group_seeds])
        hp = {k: np.array([h[k] for h, _ in group], np.float32)
              for k in hparams}
        ckpt = (None if checkpoint_dir is None else
                os.path.join(checkpoint_dir, f'ckpt-{gi}.npz'))
        tag = (f'{label} seeds {min(group_seeds)}-{max(group_seeds)}'.strip()
               + (f' x {len(points)} grid points' if len(points) > 1
                  else ''))
        if schedule is None:
            outs.append(run_seeds(learner, proto, hp, keys, joint=joint,
                                  ckpt_path=ckpt, ckpt_every=checkpoint_every,
                                  progress=progress, log=glog,
                                  label=tag, mesh=mesh,
                                  pretrained=_overlay(pretrained, learner,
                                                      hp)))
        else:
            outs.append(_streamed(learner, proto, hp, keys, schedule, ckpt,
                                  progress, tag, pretrained, glog,
                                  checkpoint_every))
    return _collect(outs, points, seeds, hparams)


def _overlay(pretrained, learner, hp):
    if callable(pretrained):
        return pretrained(learner.make_model({k: v[0] for k, v in
                                              hp.items()}))
    return pretrained


def row_names(points, seeds) -> list:
    """The rows' names in the metric logs, point-major: ``seed<s>``, or
    with a grid ``<name>=<value>,...-seed<s>`` (the names searched).

    >>> row_names([{'si.c': 1.0}, {'si.c': 10.0}], [0, 1])[1:3]
    ['si.c=1-seed1', 'si.c=10-seed0']
    """
    def point(pt):
        return ','.join(f'{k}={v:g}' for k, v in pt.items())
    return [f'{point(pt)}-seed{s}' if pt else f'seed{s}'
            for pt in points for s in seeds]


def _streamed(learner, proto, hp, keys, schedule, ckpt, progress, label,
              pretrained, log, every):
    from jcl.sweep.streamed import run_streamed
    if isinstance(proto, list):
        raise ConfigError('the streamed path takes one protocol for all '
                          'seeds')
    return run_streamed(learner, proto, hp, keys, schedule, valid=proto.valid,
                        ckpt_path=ckpt, progress=progress, label=label,
                        pretrained=_overlay(pretrained, learner, hp), log=log,
                        ckpt_every=every)


def _collect(outs, points, seeds, hparams) -> SweepResult:
    def cat(get):
        got = [get(o) for o in outs]
        if got[0] is None:
            return None
        return _shape(np.concatenate(got), len(points))

    R_valid = cat(lambda o: o.R_valid)
    extras = ({k: cat(lambda o, k=k: o.extras[k]) for k in outs[0].extras}
              if outs[0].extras else None)
    return SweepResult(
        R=cat(lambda o: o.R), R_init=cat(lambda o: o.R_init),
        R_valid=R_valid, R_task=cat(lambda o: o.R_task),
        metrics={k: cat(lambda o, k=k: o.metrics[k])
                 for k in outs[0].metrics},
        points=[{**hparams, **pt} for pt in points], seeds=list(seeds),
        chosen=None if R_valid is None else choose(R_valid),
        seconds=np.sum([o.seconds for o in outs], 0), extras=extras)
