"""Generative replay (DGR, Shin et al. 2017; the NMI-2022 baseline).

A generator (a VAE) is trained alongside the classifier. On task ``t``
(0-based) a frozen snapshot of both models, taken at the end of task
``t - 1``, provides replay: the old generator draws inputs and the old
classifier labels them (hard ``argmax`` labels, or soft targets with
``distill=True``). The current and replayed data are weighted
``1/(t+1)`` and ``1 - 1/(t+1)``, for the classifier and the generator
alike; the current-batch cross-entropy is scaled by the recipe.

Example::

    gen = vae_generator((400, 400), latent=100, input_dim=784)
    method = named_chain(
        ('ce', scale(supervised(clf.apply), current_weight)),
        ('gr', gr(clf.apply, gen)))
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jcl import combine, losses
from jcl.base import Method, make_method
from jcl.models.vae import Generator
from jcl.types import Params


class GRState(NamedTuple):
    """The state of generative replay.

    Attributes:
      teacher: the whole params dict (``'classifier'``, ``'generator'``,
        any frozen parts), leaves shaped like ``params``: a snapshot taken
        at the end of the last learned task (at ``init``: the initial
        params, used with weight 0 on the first task).
    """

    teacher: Params


def replay_classification(classify, params, teacher, x, ctx, *,
                          distill=False, temperature=2.0,
                          num_tasks=None):
    """The classifier's replay loss on inputs ``x``, averaged over the
    heads of the previous tasks.

    For every task head ``j`` (task argument ``j``, so task-specific gates
    apply), the teacher scores ``x`` over ``ctx.active[t - 1, j]`` and the
    student over ``ctx.active[t, j]``, ``t = ctx.task_id``. The head's
    loss is the student's cross-entropy against the teacher's ``argmax``
    (``distill=False``) or distillation at ``temperature``, scaled by
    ``T**2`` (``distill=True``). Heads ``j < t`` are averaged. With the
    scenario tables this is: Task-IL, the same inputs scored under every
    previous head; Class-IL, the teacher over the classes of tasks
    ``0..t-1`` and the student over ``0..t``; Domain-IL, the shared head.

    Args:
      classify: ``(params, x, task) -> logits``.
      params: the student's whole params dict.
      teacher: the teacher's whole params dict (no gradient flows to it).
      x: replayed inputs ``[N, D]``.
      ctx: the :class:`jcl.types.TaskCtx` of the step.
      distill: soft targets instead of hard labels.
      temperature: distillation temperature (may be traced).
      num_tasks: heads to consider (default: all rows of ``ctx.active``).

    Returns:
      A scalar; 0 on the first task (every head weight is 0).

    Example::

        ctx = TaskCtx(jnp.int32(1), key, jnp.asarray(proto.active))
        l = replay_classification(clf.apply, params, teacher, x_rep, ctx)
    """
    t = ctx.task_id
    prev = jnp.maximum(t - 1, 0)
    heads = jnp.arange(num_tasks or ctx.active.shape[0])
    n = x.shape[0]
    teacher = jax.lax.stop_gradient(teacher)

    def head_loss(j):
        task = jnp.full((n,), j, jnp.int32)
        student_mask, teacher_mask = ctx.active[t, j], ctx.active[prev, j]
        logits = classify(params, x, task)
        target = classify(teacher, x, task)
        if distill:
            per = losses.distillation(logits, target, student_mask,
                                      temperature,
                                      teacher_mask=teacher_mask)
        else:
            labels = jnp.argmax(losses.mask_logits(target, teacher_mask),
                                axis=-1)
            per = losses.cross_entropy(logits, labels, student_mask)
        return jnp.mean(per)

    per_head = jax.vmap(head_loss)(heads)
    weights = (heads < t) / jnp.maximum(t, 1).astype(jnp.float32)
    return jnp.sum(weights * per_head)


def gr(classify, generator: Generator, *, distill=False, temperature=2.0,
       replay_size=None, num_tasks=None) -> Method:
    """Generative replay with a generator trained on current and replayed
    data.

    Args:
      classify: ``(params, x, task) -> logits`` on the whole params dict.
      generator: a :class:`jcl.models.vae.Generator`; its parameters are
        added as ``params['generator']``.
      distill: soft targets (distillation, ``T**2``-scaled) instead of the
        teacher's hard labels (the NMI default).
      temperature: distillation temperature (may be traced).
      replay_size: replayed inputs per step (static; default: the current
        batch size).
      num_tasks: heads to replay on (static; default: all tasks of the
        active table).

    Returns:
      A method with state :class:`GRState` and terms ``'replay'`` (the
      weighted replay loss of the classifier), ``'gen_current'`` and
      ``'gen_replay'`` (the weighted generator losses).

    Example::

        gen = vae_generator((400, 400), latent=100, input_dim=784)
        method = gr(clf.apply, gen)
        params = method.extend_params({'classifier': c}, key)
        mstate = method.init(params, key)
        terms = method.loss(params, mstate, batch, ctx)
    """
    def extend_params(params, key):
        return {**params, 'generator': generator.init(key)}

    def init(params, key):
        del key  # unused
        return GRState(teacher=params)

    def consolidate(mstate, params, data, ctx):
        del mstate, data, ctx  # unused
        return GRState(teacher=params)

    def loss(params, mstate, batch, ctx):
        n = replay_size or batch.x.shape[0]
        k_sample, k_cur, k_rep = jax.random.split(ctx.key, 3)
        x_rep = jax.lax.stop_gradient(generator.sample(
            mstate.teacher['generator'], k_sample, n))
        w_cur = combine.current_weight(ctx.task_id)
        w_rep = combine.replay_weight(ctx.task_id)
        replay = replay_classification(
            classify, params, mstate.teacher, x_rep, ctx, distill=distill,
            temperature=temperature, num_tasks=num_tasks)
        gparams = params['generator']
        gen_cur = jnp.mean(generator.loss(gparams, batch.x, k_cur))
        gen_rep = jnp.mean(generator.loss(gparams, x_rep, k_rep))
        return {'replay': w_rep * replay, 'gen_current': w_cur * gen_cur,
                'gen_replay': w_rep * gen_rep}

    return make_method(init=init, loss=loss, consolidate=consolidate,
                       extend_params=extend_params)
