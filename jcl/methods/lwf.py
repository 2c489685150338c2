"""Learning without forgetting (Li & Hoiem 2017).

The current task's inputs are replayed with the soft targets of the model
as it was at the end of the previous task (the teacher). Heads are taken
from the active-output table, never from a scenario name: for every task
``j`` the student uses ``ctx.active[t, j]`` and the teacher
``ctx.active[t - 1, j]``, and the distillation is averaged over the
previous tasks ``j < t``. In Class-IL this is a teacher over the old
classes against a student over all classes so far; in Task-IL the mean
over the previous heads; in Domain-IL the one shared head.

Example::

    m = lwf(clf.apply, temperature=2.0)
    mstate = m.init(params, key)                 # teacher = params
    m.loss(params, mstate, batch, ctx)           # {'distill': scalar}
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jcl import losses
from jcl.base import Method, make_method


def _whole(params):
    return params


def lwf(classify: Callable, *, temperature=2.0, class_mean=0.0,
        select_teacher: Callable | None = None) -> Method:
    """Distillation of the previous model on the current inputs.

    The term is ``(1 - 1/(t+1)) * mean_{j<t} KD_j`` on task ``t``
    (0-based), ``KD_j`` the batch mean of :func:`jcl.losses.distillation`
    (temperature ``T``, scaled by ``T**2``) of head ``j``; it is 0 on the
    first task. The replay weight ``1 - 1/(t+1)`` is applied here; the
    current-data loss gets ``1/(t+1)`` from the recipe.

    Args:
      classify: ``(params, x, task) -> logits`` on the whole params dict;
        head ``j`` is run with ``task = j`` (so XdG gates follow the head).
      temperature: ``T`` (may be a tracer).
      class_mean: 1: each ``KD_j`` is the mean over head ``j``'s active
        outputs instead of the sum (see :func:`jcl.losses.distillation`;
        the normalisation behind the RtF paper's permuted MNIST numbers);
        0 (the default) is SPEC.md's sum. May be a tracer.
      select_teacher: ``params -> dict``, the top-level entries that are
        snapshotted as the teacher (default: the whole dict). Entries it
        leaves out are shared with the student (e.g. frozen gates).

    Returns:
      A method with one term, ``'distill'``; its state is the teacher
      snapshot ``select_teacher(params)`` (the initial params at first,
      re-taken at every consolidation).

    Example::

        m = lwf(clf.apply, select_teacher=lambda p: {
            'classifier': p['classifier']})
    """
    snapshot = _whole if select_teacher is None else select_teacher

    def init(params, key):
        del key  # unused
        return snapshot(params)

    def loss(params, mstate, batch, ctx):
        t = ctx.task_id
        teacher = {**params, **mstate}
        num_tasks = ctx.active.shape[0]
        size = batch.x.shape[0]

        def head(j):
            task = jnp.full((size,), j, jnp.int32)
            student = classify(params, batch.x, task)
            target = jax.lax.stop_gradient(classify(teacher, batch.x, task))
            kd = losses.distillation(
                student, target, ctx.active[t, j], temperature,
                teacher_mask=ctx.active[jnp.maximum(t - 1, 0), j],
                class_mean=class_mean)
            return jnp.mean(kd)

        heads = jnp.arange(num_tasks)
        t_float = jnp.asarray(t, jnp.float32)
        weights = (heads < t) / jnp.maximum(t_float, 1.0)
        kd = jnp.sum(weights * jax.vmap(head)(heads))
        return {'distill': (1.0 - 1.0 / (t_float + 1.0)) * kd}

    def consolidate(mstate, params, data, ctx):
        del mstate, data, ctx  # unused
        return snapshot(params)

    return make_method(init=init, loss=loss, consolidate=consolidate)
