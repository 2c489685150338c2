"""Learning without forgetting (Li & Hoiem 2017).

The current task's inputs are replayed with the soft targets of the model
as it was at the end of the previous task (the teacher). Heads are taken
from the active-output table, never from a scenario name: for every task
``j`` the student uses ``ctx.active[t, j]`` and the teacher
``ctx.active[t - 1, j]``, and the distillation is averaged over the
previous tasks ``j < t``. In Class-IL this is a teacher over the old
classes against a student over all classes so far; in Task-IL the mean
over the previous heads; in Domain-IL the one shared head.

The loss is on replayed data: :func:`jcl.combine.replay_weighted` weighs
it by ``1 - 1/t``.
"""

import jax
import jax.numpy as jnp

from jcl import losses
from jcl.method import Method, make_method
from jcl.model import Model, logits
from jcl.types import Snapshot


def lwf(model: Model, *, temperature=2.0, class_mean=0.0) -> Method:
    """Distillation of the previous model on the current inputs.

    The term is ``mean_{j<t} KD_j`` on task ``t`` (0-based), ``KD_j`` the
    batch mean of :func:`jcl.losses.distillation` (temperature ``T``,
    scaled by ``T**2``) of head ``j``; it is 0 on the first task.

    Args:
      model: the model; head ``j`` is run with ``task = j`` (so XdG gates
        follow the head).
      temperature: ``T`` (may be a tracer).
      class_mean: 1: each ``KD_j`` is the mean over head ``j``'s active
        outputs instead of the sum (see :func:`jcl.losses.distillation`;
        the normalisation behind the RtF paper's permuted MNIST numbers);
        0 (the default) is SPEC.md's sum. May be a tracer.

    Returns:
      A method with one term, ``'distill'``; its state is the teacher
      :class:`jcl.types.Snapshot` (the initial model at first, re-taken
      at every consolidation).

    >>> import jax
    >>> from jcl.models import mlp_classifier
    >>> from jcl.types import Snapshot
    >>> clf = mlp_classifier((4,), num_outputs=2, input_dim=3)
    >>> m = lwf(clf, temperature=2.0)
    >>> teacher = m.init(Snapshot(*clf.init(jax.random.PRNGKey(0))), None)
    >>> type(teacher).__name__
    'Snapshot'
    """
    def init(snap, ctx):
        del ctx  # unused
        return snap

    def loss(teacher, fwd, ctx):
        t = ctx.task_id
        x = fwd.batch.x
        num_tasks = ctx.active.shape[0]

        def head(j):
            task = jnp.full((x.shape[0],), j, jnp.int32)
            student, _ = model.apply(fwd.params, fwd.model_state, x, task,
                                     train=True)
            target = jax.lax.stop_gradient(logits(model, teacher, x, task))
            kd = losses.distillation(
                student['logits'], target, ctx.active[t, j], temperature,
                teacher_mask=ctx.active[jnp.maximum(t - 1, 0), j],
                class_mean=class_mean)
            return jnp.mean(kd)

        heads = jnp.arange(num_tasks)
        t_float = jnp.asarray(t, jnp.float32)
        weights = (heads < t) / jnp.maximum(t_float, 1.0)
        return {'distill': jnp.sum(weights * jax.vmap(head)(heads))}

    def consolidate(teacher, end, ctx):
        del teacher, ctx  # unused
        return Snapshot(end.params, end.model_state)

    return make_method(init=init, loss=loss, consolidate=consolidate)


