"""Host-streamed training: epochs of host-prepared batches, K steps per
compiled call.

For data that does not live on the device (large images, long task
sequences) the host draws each task's epochs (shuffled without
replacement), gathers the raw examples of ``K`` steps at a time and
feeds them to :func:`jcl.training.task.train_chunk`, the same compiled
step as the
fused path; the learning rate follows a step schedule, passed per step
(no recompilation); evaluation runs in chunks of host batches too.

A split is read through a *source*: anything with ``count`` (int ``[T]``)
and ``gather(task, entries) -> Batch`` of numpy arrays (``entries`` of
any shape, e.g. ``[K, B]``): a :class:`jcl.core.taskdata.TaskData` (wrapped in
:class:`ArraySplit`) or a split of
:func:`jcl.datasets.image_folders.open_image_tasks`. Optionally each
epoch is validated (:class:`jcl.training.epochs.EpochTracker`): the best epoch's
state is kept, and training stops early, as CLR's reference does.

>>> import numpy as np
>>> plan = epoch_plan(count=10, schedule=Schedule(epochs=2, batch_size=4),
...                   rng=np.random.RandomState(0))
>>> plan.index.shape, plan.lr_scale.tolist()
((4, 4), [1.0, 1.0, 1.0, 1.0])
>>> sorted(plan.index[:2].ravel().tolist()) == sorted(set(
...     plan.index[:2].ravel().tolist()))      # no repeats in an epoch
True
>>> from jcl.tasks.protocols import class_split
>>> pool = dict(train_x=np.arange(8, dtype=np.uint8).reshape(4, 2),
...             train_y=np.arange(4), test_x=np.zeros((4, 2), np.uint8),
...             test_y=np.arange(4))
>>> source = as_source(class_split('toy', pool, 'class').train)
>>> source.count.tolist(), source.gather(1, [[0], [1]]).y.tolist()
([2, 2], [[2], [3]])
"""

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from jcl.analysis.evaluate import correct_of
from jcl.core import taskdata as data_lib
from jcl.core.errors import ConfigError
from jcl.core.records import Batch
from jcl.sweep.loop import RunResult
from jcl.training import checkpoint
from jcl.training.epochs import (  # noqa: F401  (Schedule, EpochPlan: re-exported)
    EpochPlan,
    EpochTracker,
    Schedule,
    check_schedule,
    epoch_plan,
    run_epochs,
)
from jcl.training.learner import Learner, begin_task, init_state
from jcl.training.task import finish_task, scores_fn, train_chunk


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


def _correct(learner, state, hp, raw, active_row):
    scores = scores_fn(learner, hp, state)
    batch = raw._replace(x=learner.prepare(raw.x))
    return correct_of(scores(batch.x, batch.task), batch, active_row)


@functools.lru_cache(maxsize=None)
def _compiled(learner: Learner):
    init_jit = jax.jit(jax.vmap(functools.partial(init_state, learner),
                                in_axes=(0, 0, None)))

    def init(hp, keys, pretrained=None):
        return init_jit(hp, keys, pretrained)
    begin = jax.jit(jax.vmap(functools.partial(begin_task, learner),
                             in_axes=(0, 0, None)))
    chunk = jax.jit(jax.vmap(functools.partial(train_chunk, learner),
                             in_axes=(0, 0, None, 0, None, None, None,
                                      None)),
                    donate_argnums=0)
    finish = jax.jit(jax.vmap(functools.partial(finish_task, learner),
                              in_axes=(0, 0, None, None, None, None)))
    evaluate = jax.jit(jax.vmap(functools.partial(_correct, learner),
                                in_axes=(0, 0, None, None)))
    return init, begin, chunk, finish, evaluate


@functools.lru_cache(maxsize=None)
def _evaluate_rows(learner: Learner):
    """Like ``_compiled``'s ``evaluate`` for several active rows ``[I, T,
    C]`` at once (one forward pass): hits ``[S, I, B]``."""
    rows = jax.vmap(functools.partial(_correct, learner),
                    in_axes=(None, None, None, 0))
    return jax.jit(jax.vmap(rows, in_axes=(0, 0, None, None)))


def _step_keys(state, n):
    """The step keys of a task, drawn as the fused path draws them."""
    def one(key):
        _, k_steps, _ = jax.random.split(key, 3)
        _, k_loss = jax.random.split(k_steps)
        return jax.random.split(k_loss, n)
    return jax.vmap(one)(state.key)


def evaluate_streamed(evaluate, state, hp, test, active_row, chunk,
                      tasks=None):
    """Accuracy ``[S, T]`` on every task (or on ``tasks``) from host
    chunks of ``test`` (a source or a TaskData), each padded to one shape;
    ``[S, I, T]`` with :func:`_evaluate_rows` and ``I`` active rows. A
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


def run_streamed(learner: Learner, protocol, hp: dict, keys, schedule:
                 Schedule, *, valid=None, steps_per_call=50,
                 eval_chunk=1000, shuffle_seed=0, ckpt_path=None,
                 progress=print, label='', epoch_lines_after=5.0,
                 pretrained=None) -> RunResult:
    """Trains every task of ``protocol`` from host-streamed batches.

    Every row (seed, grid point) draws the same epochs (from
    ``shuffle_seed`` and the task); ``steps_per_call`` steps go to the
    device at once. Evaluation streams the test data in chunks of
    ``eval_chunk``.

    Args:
      learner: the static learner. hp: dict of ``[S]`` arrays. keys:
        ``[S, 2]`` PRNG keys. schedule: see :class:`Schedule`.
      protocol: ``train`` and ``test`` splits (TaskData or sources) and
        ``active`` (bool ``[T, T, C]``). Consolidation sees the task's
        training data on the device when ``train`` is a TaskData, and
        ``None`` otherwise: a method that consolidates on the data (EWC's
        Fisher, a buffer) needs a TaskData.
      valid: the validation split (TaskData or source) that every epoch
        is validated on (task ``t``'s part, ``active[t]``); needed by
        ``select_best`` and ``patience``.
      ckpt_path: where to checkpoint after each task (``None``: never); a
        run finds its checkpoint there and restarts after its last
        finished task, ending with the numbers of an uninterrupted run.
      progress: called with one line per task, and one per validated
        epoch that took more than ``epoch_lines_after`` seconds.
      label: prefix of the progress lines.
      pretrained: leaves overlaid on every row's initialisation
        (:func:`jcl.training.learner.init_state`), or ``None``.

    Returns:
      A :class:`jcl.sweep.loop.RunResult` (``metrics['loss']`` ``[S, T,
      steps]`` per step of the longest task, zero-padded and zero after a
      row stops; ``extras`` as there).
    """
    train, test = as_source(protocol.train), as_source(protocol.test)
    valid = None if valid is None else as_source(valid)
    if schedule.batch_size != learner.batch_size:
        raise ConfigError('the schedule and the learner disagree on the '
                          'batch size')
    check_schedule(schedule, len(train.count),
                   None if valid is None else valid.count)
    init, begin, chunk, finish, evaluate = _compiled(learner)
    hp = {k: jnp.asarray(v, jnp.float32) for k, v in hp.items()}
    active = jnp.asarray(protocol.active)
    train_dev = (data_lib.to_device(protocol.train)
                 if isinstance(protocol.train, data_lib.TaskData) else None)
    counts = np.asarray(train.count)
    num_tasks, rows, b = len(counts), len(keys), schedule.batch_size
    full = [c // b * schedule.epochs for c in counts]
    width = max(min(n, schedule.max_steps or n) for n in full)
    k_call = max(1, min(steps_per_call, max(
        min(c // b, width) if valid is not None else width
        for c in counts)))
    state = init(hp, keys, pretrained)
    R_init = evaluate_streamed(_evaluate_rows(learner), state, hp, test,
                               active, eval_chunk).astype(np.float32)
    state, start, rec = checkpoint.load_records(ckpt_path, state)
    if start and progress:
        progress(f'{label} resuming after task {start}/{num_tasks} from '
                 f'{ckpt_path}')

    def one_task(state, t):
        count = int(counts[t])
        plan = epoch_plan(count, schedule,
                          np.random.RandomState([shuffle_seed, t]))
        state = begin(state, hp, jnp.int32(t))
        step_keys = _step_keys(state, full[t])

        def run_steps(state, lo, hi):
            pieces = []
            for c in range(lo, hi, k_call):
                k = min(k_call, hi - c)
                sl = c + np.arange(k_call) % k  # pad: repeat
                state, m = chunk(state, hp, train.gather(t, plan.index[sl]),
                                 step_keys[:, sl], np.arange(k_call) < k,
                                 plan.lr_scale[sl], active, jnp.int32(t))
                pieces.append((m['loss'], k))
            return state, pieces

        def on_epoch(e, acc, seconds):
            if progress and seconds > epoch_lines_after:
                progress(f'{label} task {t + 1}/{num_tasks} epoch {e + 1}/'
                         f'{schedule.epochs}  {track.line(acc)}  '
                         f'{seconds:.1f}s')

        track = (None if valid is None else EpochTracker(
            rows, schedule.epochs, schedule.patience, schedule.select_best))
        done = run_epochs(
            run_steps, lambda st: evaluate_streamed(
                evaluate, st, hp, valid, active[t], eval_chunk, [t])[:, 0],
            state, per_epoch=count // b,
            steps=min(full[t], schedule.max_steps or full[t]),
            tracker=track, on_epoch=on_epoch)
        try:
            state, _ = finish(done.state, hp, train_dev, None, active,
                              jnp.int32(t))
        except (AttributeError, TypeError) as e:
            if train_dev is not None:
                raise
            raise ConfigError('this method consolidates on the training '
                              'data, which a source that is not a TaskData '
                              'does not give') from e
        n = done.loss.shape[1]
        rec['loss'].append(np.pad(done.loss, ((0, 0), (0, width - n))))
        rec['steps'].append(done.steps)
        shown = track or EpochTracker(rows, schedule.epochs)  # empty
        rec['epochs'].append(shown.epochs)
        rec['best_epoch'].append(shown.best_epoch)
        rec['valid_acc'].append(shown.curve)
        return state, track, n

    for t in range(start, num_tasks):
        t0 = time.time()
        state, track, n = one_task(state, t)
        acc = evaluate_streamed(evaluate, state, hp, test, active[t],
                                eval_chunk)
        rec['R'].append(acc.astype(np.float32))
        rec['seconds'].append(time.time() - t0)
        if ckpt_path:
            checkpoint.save(ckpt_path, state, tasks_done=t + 1,
                            **checkpoint.stack_records(rec))
        if progress:
            best = '' if track is None else f'  {track.line()}'
            progress(f'{label} task {t + 1}/{num_tasks}  {n} steps{best} '
                     f' avg acc {100 * acc[:, :t + 1].mean():.2f}%  '
                     f'{rec["seconds"][-1]:.1f}s')
    out = checkpoint.stack_records(rec)
    return RunResult(
        R=out.pop('R'), R_init=R_init, metrics={'loss': out.pop('loss')},
        seconds=out.pop('seconds'), state=state, extras=out)
