"""The loop over tasks: compiled task steps, progress, checkpoints.

``run_seeds`` trains one learner for a group of seeds (a ``vmap`` axis)
through all tasks, each task in compiled chunks (:mod:`jcl.sweep.chunks`).
After each task and inside tasks it saves the whole carry, so a killed run
restarts where it was and ends with exactly the numbers of an
uninterrupted run.
"""

import io
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jcl.core import taskdata as data_lib
from jcl.logs.images import grid_sampler, sample_grid
from jcl.sweep import distributed
from jcl.sweep.chunks import Saver, train_in_chunks
from jcl.sweep.rows import compile_programs, padded_rows, place
from jcl.training import checkpoint
from jcl.training.learner import Learner, task_steps
from jcl.training.progress import TaskProgress
from jcl.training.task import TaskPlan

# the evaluation view of a Class-IL run scored with each task's own units
TASK_VIEW = 'test_task'


class RunResult(NamedTuple):
    """Outputs of one run over seeds.

    Attributes:
      R: float ``[S, T, T]`` accuracy matrices.
      R_init: float ``[S, T, T]`` accuracies of the untrained model.
      metrics: dict of float ``[S, T, num_steps]`` loss curves.
      seconds: wall seconds per task (compile included in the first).
      R_valid: ``[S, T, T]`` on the validation split, or ``None``.
      R_task: Class-IL runs: ``[S, T, T]``, the same networks scored on
        each task's own units only (the Task-IL column of DER's tables),
        or ``None``.
      state: the final carry (:class:`jcl.core.records.CLState`, leaves with a
        leading seed axis), or ``None``.
      extras: further per-task records of the streamed path, or ``None``:
        int ``[S, T]`` ``'steps'`` (steps trained), ``'epochs'`` (epochs
        validated), ``'best_epoch'`` (0-based; ``-1`` without validation)
        and float ``[S, T, epochs]`` ``'valid_acc'`` (``nan`` where a row
        did not run).
    """

    R: np.ndarray
    R_init: np.ndarray
    metrics: dict
    seconds: np.ndarray
    R_valid: np.ndarray | None = None
    state: object = None
    R_task: np.ndarray | None = None
    extras: dict | None = None


def _saved(ckpt_path):
    """The checkpoint's bytes as process 0 reads them (sent to the other
    processes, so hosts need not share a file system), or ``None``."""
    data = None
    found = ckpt_path and distributed.is_main() and checkpoint.latest(
        ckpt_path)
    if found:
        with open(found, 'rb') as f:
            data = f.read()
    data = distributed.broadcast_bytes(data)
    return None if data is None else io.BytesIO(data)


def run_seeds(learner: Learner, protocol, hp: dict, keys, *,
              joint=False, ckpt_path=None,
              progress: Callable[[str], None] | None = print,
              label='', heartbeat_after=60.0, mesh=None,
              pretrained=None, ckpt_every=None,
              ckpt_seconds=60.0, log=None) -> RunResult:
    """Trains ``learner`` on every task of ``protocol`` for several seeds.

    Args:
      learner: the static learner.
      protocol: data and scenario, or a list with one protocol per seed
        (a per-seed class order); their data is stacked on a seed axis.
      hp: dict of ``[S]`` arrays (one value per seed or grid point).
      keys: ``[S, 2]`` PRNG keys.
      joint: train task ``t`` on the data of tasks ``0..t`` (Joint).
      ckpt_path: where to checkpoint after each task (``None``: never)
        and inside a task (the carry, the task's draws, the position).
      ckpt_every: checkpoint inside a task every this many steps (at the
        end of a compiled chunk); ``None``: every ``ckpt_seconds`` of
        wall time; ``0``: only after each task.
      progress: called with one line per finished task.
      label: prefix of the progress lines.
      heartbeat_after: seconds into a task after which ``progress`` also
        gets a line at every tenth of the task's steps (with an estimate
        of the time left); short tasks stay at one line each.
      pretrained: leaves overlaid on every row's initialisation
        (:func:`jcl.training.learner.init_state`), or ``None``.
      mesh: split the rows over this mesh's devices
        (:func:`jcl.sweep.rows.row_mesh`); rows are padded to a multiple of the
        devices with copies of the last one, and dropped from the results.
      log: a :class:`jcl.logs.GroupLog` of these rows (on every process;
        only the first writes), or ``None``.

    Returns:
      A :class:`RunResult`.
    """
    if not distributed.is_main():
        progress = None   # one process prints
    n = len(keys)
    pad = padded_rows(n, mesh) - n
    if pad:
        keys = jnp.concatenate([keys, jnp.repeat(keys[-1:], pad, 0)])
        hp = {k: np.concatenate([np.asarray(v), np.repeat(
            np.asarray(v)[-1:], pad, 0)]) for k, v in hp.items()}
        if isinstance(protocol, list):
            protocol = protocol + [protocol[-1]] * pad
    protos = protocol if isinstance(protocol, list) else [protocol]
    protocol = protos[0]
    train, train_axes = data_lib.stack([data_lib.cumulative(p.train)
                                        if joint else p.train
                                        for p in protos])
    test, test_axes = data_lib.stack([p.test for p in protos])
    evals, eval_axes = {'test': test}, {'test': test_axes}
    if protocol.valid is not None:
        evals['valid'], eval_axes['valid'] = data_lib.stack(
            [p.valid for p in protos])
    active = protocol.active
    if protocol.scenario == 'class' and protocol.own is not None:
        # scored on 'test' in the same pass (jcl.training.scoring.each_eval)
        active = {'train': active, TASK_VIEW: np.broadcast_to(
            protocol.own[None], np.shape(active))}
    if len(protos) == 1:
        train_axes = None
        eval_axes = {k: None for k in evals}
    train = place(data_lib.to_device(train), mesh, train_axes)
    evals = place({k: data_lib.to_device(v) for k, v in evals.items()},
                  mesh, eval_axes)
    active = place(jax.tree.map(jnp.asarray, active), mesh)
    hp = place({k: jnp.asarray(v, jnp.float32) for k, v in hp.items()},
               mesh, 'rows')
    keys = place(jnp.asarray(keys), mesh, 'rows')
    run = compile_programs(learner, train_axes=train_axes,
                           test_axes=eval_axes, mesh=mesh)
    state = run.init(hp, keys, place(pretrained, mesh))
    num_tasks = protocol.num_tasks
    rows, vrows, trows, metrics, seconds, start = [], [], [], {}, [], 0
    R_init = distributed.gather(run.init_acc(state, hp, evals,
                                             active)['test'])
    saved = _saved(ckpt_path)
    resume = None
    if saved is not None:
        state, extra = checkpoint.load(saved, state, name=ckpt_path)
        state = place(state, mesh, 'rows')
        start = int(extra['tasks_done'])
        rows = list(extra['R'].transpose(1, 0, 2)) if start else []
        vrows = (list(extra['R_valid'].transpose(1, 0, 2))
                 if 'R_valid' in extra else [])
        trows = (list(extra['R_task'].transpose(1, 0, 2))
                 if 'R_task' in extra else [])
        seconds = list(extra['seconds'])
        metrics = {k[len('m_'):]: list(v.transpose(1, 0, 2))
                   for k, v in extra.items() if k.startswith('m_')}
        resume = _in_task(extra, mesh)
        if progress:
            at = (f'step {resume[1]} of task {start + 1}' if resume
                  else f'task {start}/{num_tasks}')
            progress(f'{label} resuming after {at} from {ckpt_path}')

    def records(**more):
        return dict(
            R=np.stack(rows, 1) if rows else np.zeros((len(keys), 0, 0)),
            seconds=np.asarray(seconds, np.float64),
            **({'R_valid': np.stack(vrows, 1)} if vrows else {}),
            **({'R_task': np.stack(trows, 1)} if trows else {}),
            **{f'm_{k}': np.stack(v, 1) for k, v in metrics.items()},
            **more)

    def save(host, **more):
        if distributed.is_main():
            checkpoint.save(ckpt_path, host, **records(**more))

    for t in range(start, num_tasks):
        t0 = time.time()
        n_steps = task_steps(learner, train.index.shape[-1])
        hook = _hook(TaskProgress(progress, f'{label} task {t + 1}/'
                                  f'{num_tasks}', n_steps, t0,
                                  heartbeat_after) if progress else None,
                     log)
        if log is not None:
            log.start_task(t, t * n_steps,
                           *(resume[1:] if resume else (0, None)))
        saver = None
        if ckpt_path and ckpt_every != 0:
            saver = Saver(lambda done, st, plan, m, t=t: save(
                distributed.gather(st), tasks_done=t, steps_done=done,
                **_plan_arrays(distributed.gather(plan)),
                **{f'part_{k}': v for k, v in m.items()}),
                every_steps=ckpt_every, every_seconds=ckpt_seconds)
        state, _, m = train_in_chunks(run, state, hp, train, active, t,
                                      n_steps, hook, saver, resume)
        resume = None
        state, accs = run.finish(state, hp, train, evals, active,
                                 jnp.int32(t))
        m, accs = distributed.gather((m, accs))
        acc = accs['test']
        if 'valid' in accs:
            vrows.append(accs['valid'])
        if TASK_VIEW in accs:
            trows.append(accs[TASK_VIEW])
        seconds.append(time.time() - t0)
        rows.append(acc)
        for k, v in m.items():
            metrics.setdefault(k, []).append(v)
        if ckpt_path:
            save(distributed.gather(state), tasks_done=t + 1)
        if log is not None:
            log.end_task(acc, seconds[-1], _samples(
                learner, state, hp, protocol, t, log))
        if progress:
            avg = acc[:n, :t + 1].mean(-1)
            loss = float(np.mean(np.asarray(m['loss'])[:, -100:]))
            progress(f'{label} task {t + 1}/{num_tasks}  '
                     f'loss {loss:.4f}  avg acc {100 * avg.mean():.2f}% '
                     f'(seeds {", ".join(f"{100 * a:.1f}" for a in avg)})'
                     f'  {seconds[-1]:.1f}s')
    jax.block_until_ready(state)
    if jax.process_count() > 1:
        state = distributed.gather(state)
    return RunResult(R=np.stack(rows, 1)[:n], R_init=R_init[:n],
                     metrics={k: np.stack(v, 1)[:n]
                              for k, v in metrics.items()},
                     seconds=np.asarray(seconds),
                     R_valid=np.stack(vrows, 1)[:n] if vrows else None,
                     state=jax.tree.map(lambda a: a[:n], state),
                     R_task=np.stack(trows, 1)[:n] if trows else None)


def _hook(progress, log):
    """The chunk hook: the progress line, then the metric log."""
    if log is None:
        return progress

    def both(done, curves):
        if progress is not None:
            progress(done, curves)
        log.chunk(curves, done)
    return both


def _samples(learner, state, hp, protocol, t, log) -> dict:
    """``{row name: pixels}``: the decoded samples of the classes seen so
    far, for the log's image rows of a generative model (one compiled
    sampler per learner)."""
    if not log.wants_images:
        return {}
    state, hp = distributed.gather((state, hp))
    first = tuple(sorted((k, float(np.asarray(v)[0])) for k, v in hp.items()))
    sampler = grid_sampler(learner.make_model, protocol.num_outputs,
                           log.log.samples, first)
    if sampler is None:
        return {}
    classes = np.flatnonzero(np.asarray(protocol.active)[t, :t + 1].any(0))
    out = {}
    for i in log.image_rows:
        one = jax.tree.map(lambda a: a[i], state)
        pixels = sample_grid(sampler, {k: np.asarray(v)[i] for k, v in
                                       hp.items()}, one.params,
                             one.model_state, jax.random.PRNGKey(t), classes)
        if pixels is not None:
            out[log.rows[i]] = pixels
    return out


def _plan_arrays(plan) -> dict:
    out = {'plan_picks': plan.picks, 'plan_keys': plan.keys}
    if plan.valid is not None:
        out['plan_valid'] = plan.valid
    return out


def _in_task(extra, mesh):
    """``(plan, steps done, curves so far)`` of an in-task checkpoint, or
    ``None`` for one written at a task's end."""
    if int(extra.get('steps_done', 0)) == 0:
        return None
    plan = TaskPlan(extra['plan_picks'], extra['plan_keys'],
                    extra.get('plan_valid'))
    plan = place(jax.tree.map(jnp.asarray, plan), mesh, 'rows')
    curves = {k[len('part_'):]: v for k, v in extra.items()
              if k.startswith('part_')}
    return plan, int(extra['steps_done']), curves
