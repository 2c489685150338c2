"""Host-streamed training: epochs of host-prepared batches, K steps per
compiled call.

For data that does not live on the device (large images, long task
sequences) the host draws each task's epochs (shuffled without
replacement), gathers the raw examples of ``K`` steps at a time and
feeds them to :func:`jcl.training.task.train_chunk`, the same compiled
step as the
fused path; the learning rate follows a step schedule, passed per step
(no recompilation); evaluation runs in chunks of host batches too.

A split is read through a *source* (:mod:`jcl.sweep.sources`).
Optionally each epoch is validated
(:class:`jcl.training.epochs.EpochTracker`): the best epoch's state is
kept, and training stops early, as CLR's reference does. Checkpoints are
written after each task and inside tasks
(:func:`jcl.training.epoch_loop.run_epochs`): a killed run started again
ends with the numbers of an uninterrupted one.

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

import jax
import jax.numpy as jnp
import numpy as np

from jcl.core import taskdata as data_lib
from jcl.core.errors import ConfigError
from jcl.sweep.chunks import Saver
from jcl.sweep.loop import RunResult
from jcl.sweep.sources import (  # noqa: F401  (re-exported)
    ArraySplit,
    as_source,
    correct,
    evaluate_rows,
    evaluate_streamed,
    gather_host,
)
from jcl.training import checkpoint
from jcl.training.epoch_loop import Resume, run_epochs
from jcl.training.epochs import (  # noqa: F401  (Schedule, EpochPlan: re-exported)
    EpochPlan,
    EpochTracker,
    Schedule,
    check_schedule,
    epoch_plan,
)
from jcl.training.learner import Learner, begin_task, init_state
from jcl.training.task import finish_task, train_chunk


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
    evaluate = jax.jit(jax.vmap(functools.partial(correct, learner),
                                in_axes=(0, 0, None, None)))
    return init, begin, chunk, finish, evaluate


def _step_keys(state, n):
    """The step keys of a task, drawn as the fused path draws them."""
    def one(key):
        _, k_steps, _ = jax.random.split(key, 3)
        _, k_loss = jax.random.split(k_steps)
        return jax.random.split(k_loss, n)
    return jax.vmap(one)(state.key)


def _log_call(log, piece, lr, lr_scale):
    """One device call's ``k`` steps from step ``c`` of the task, to the
    metric log (the loss, and the learning rate of the schedule)."""
    loss, k, c = piece
    log.chunk({'loss': np.asarray(loss)[:, :k],
               'lr': lr * lr_scale[None, c:c + k]}, c + k)


def _save_inside(path, t, rec, done, state, kept, loss, tracker):
    """An in-task checkpoint: the carry (and the rows' kept states), the
    finished tasks' records, the steps done, their losses, the tracker."""
    tree = {'now': state, **({} if kept is None else {'kept': kept})}
    more = {} if kept is None else {'has_kept': 1}
    if tracker is not None:
        more.update({f'tracker/{k}': v for k, v in tracker.arrays().items()})
    checkpoint.save(path, tree, tasks_done=t, steps_done=done,
                    part_loss=loss, **more,
                    **(checkpoint.stack_records(rec) if t else {}))


def run_streamed(learner: Learner, protocol, hp: dict, keys, schedule:
                 Schedule, *, valid=None, steps_per_call=50,
                 eval_chunk=1000, shuffle_seed=0, ckpt_path=None,
                 progress=print, label='', epoch_lines_after=5.0,
                 pretrained=None, log=None, ckpt_every=None,
                 ckpt_seconds=60.0) -> RunResult:
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
      ckpt_path: where to checkpoint after each task and inside tasks
        (``None``: never); a run finds its checkpoint there and restarts
        where it left off, ending with the numbers of an uninterrupted
        run.
      ckpt_every: checkpoint inside a task every this many steps (at the
        end of a device call or an epoch's validation); ``None``: every
        ``ckpt_seconds`` of wall time; ``0``: after tasks only.
      progress: called with one line per task, and one per validated
        epoch that took more than ``epoch_lines_after`` seconds.
      label: prefix of the progress lines.
      pretrained: leaves overlaid on every row's initialisation
        (:func:`jcl.training.learner.init_state`), or ``None``.
      log: a :class:`jcl.logs.GroupLog` of these rows, or ``None``
        (the loss and the scheduled learning rate of every step, the
        accuracies after each task).

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
    planned = [min(n, schedule.max_steps or n) for n in full]
    lr = None if log is None else np.asarray(hp['lr'])[:, None]
    width = max(min(n, schedule.max_steps or n) for n in full)
    k_call = max(1, min(steps_per_call, max(
        min(c // b, width) if valid is not None else width
        for c in counts)))
    state = init(hp, keys, pretrained)
    R_init = evaluate_streamed(evaluate_rows(learner), state, hp, test,
                               active, eval_chunk).astype(np.float32)
    state, start, rec, inside = checkpoint.load_records(ckpt_path, state)
    if (start or inside) and progress:
        at = (f'step {inside["done"]} of task {start + 1}' if inside
              else f'task {start}/{num_tasks}')
        progress(f'{label} resuming after {at} from {ckpt_path}')

    def one_task(state, t, inside):
        count = int(counts[t])
        plan = epoch_plan(count, schedule,
                          np.random.RandomState([shuffle_seed, t]))
        if inside is None:
            state = begin(state, hp, jnp.int32(t))
        step_keys = _step_keys(state, full[t])
        track = (None if valid is None else EpochTracker(
            rows, schedule.epochs, schedule.patience, schedule.select_best))
        resume = None if inside is None else Resume(
            inside['done'], inside['kept'], inside['loss'])
        if track is not None and inside is not None:
            track.restore({k[len('tracker/'):]: v for k, v in inside.items()
                           if k.startswith('tracker/')})
        if log is not None:
            done = 0 if resume is None else resume.done
            log.start_task(t, int(sum(planned[:t])), done, None if not done
                           else {'loss': resume.loss,
                                 'lr': lr * plan.lr_scale[None, :done]})

        def run_steps(state, lo, hi):
            pieces = []
            for c in range(lo, hi, k_call):
                k = min(k_call, hi - c)
                sl = c + np.arange(k_call) % k  # pad: repeat
                state, m = chunk(state, hp, train.gather(t, plan.index[sl]),
                                 step_keys[:, sl], np.arange(k_call) < k,
                                 plan.lr_scale[sl], active, jnp.int32(t))
                if log is not None and pieces:   # one call in flight
                    _log_call(log, pieces[-1], lr, plan.lr_scale)
                pieces.append((m['loss'], k, c))
            if log is not None and pieces:
                _log_call(log, pieces[-1], lr, plan.lr_scale)
            return state, [p[:2] for p in pieces]

        def on_epoch(e, acc, seconds):
            if progress and seconds > epoch_lines_after:
                progress(f'{label} task {t + 1}/{num_tasks} epoch {e + 1}/'
                         f'{schedule.epochs}  {track.line(acc)}  '
                         f'{seconds:.1f}s')

        saver = None
        if ckpt_path and ckpt_every != 0:
            saver = Saver(lambda done, st, kept, loss: _save_inside(
                ckpt_path, t, rec, done, st, kept, loss, track),
                every_steps=ckpt_every, every_seconds=ckpt_seconds)
        done = run_epochs(
            run_steps, lambda st: evaluate_streamed(
                evaluate, st, hp, valid, active[t], eval_chunk, [t])[:, 0],
            state, per_epoch=count // b,
            steps=min(full[t], schedule.max_steps or full[t]),
            tracker=track, on_epoch=on_epoch, every=k_call, saver=saver,
            resume=resume)
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
        state, track, n = one_task(state, t, inside)
        inside = None
        acc = evaluate_streamed(evaluate, state, hp, test, active[t],
                                eval_chunk)
        rec['R'].append(acc.astype(np.float32))
        rec['seconds'].append(time.time() - t0)
        if log is not None:
            log.end_task(acc, rec['seconds'][-1])
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
