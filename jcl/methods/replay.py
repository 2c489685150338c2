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
                          num_tasks=None, heads='split', weights=None):
    """The classifier's replay loss on inputs ``x`` over the heads of the
    previous tasks.

    Task ``t = ctx.task_id`` (0-based) replays tasks ``0..t-1``. A replayed
    input scored under head ``j`` (task argument ``j``, so task-specific
    gates apply) is scored by the teacher over ``ctx.active[t - 1, j]`` and
    by the student over ``ctx.active[t, j]``; its loss is the student's
    cross-entropy against the teacher's ``argmax`` (``distill=False``) or
    distillation at ``temperature``, scaled by ``T**2`` (``distill=True``).

    ``heads`` says which inputs go to which head:

    * ``'split'``: input ``i`` is scored under head ``i mod t``, so the
      replayed batch is split evenly over the previous tasks and every
      input costs one forward pass of each model.
    * ``'all'``: every input is scored under every previous head and the
      heads are averaged (the NMI code's Task-IL replay; ``t`` times the
      compute, the same expected loss).

    With the scenario tables the heads differ only in Task-IL: in Class-IL
    the teacher scores the classes of tasks ``0..t-1`` and the student
    ``0..t``; in Domain-IL both use the shared head.

    Args:
      classify: ``(params, x, task) -> logits``.
      params: the student's whole params dict.
      teacher: the teacher's whole params dict (no gradient flows to it).
      x: replayed inputs ``[N, D]``.
      ctx: the :class:`jcl.types.TaskCtx` of the step.
      distill: soft targets instead of hard labels.
      temperature: distillation temperature (may be traced).
      num_tasks: heads to consider with ``heads='all'`` (default: all rows
        of ``ctx.active``).
      heads: ``'split'`` or ``'all'`` (static).
      weights: optional ``[N]`` per-input weights (e.g. a 0/1 mask that
        makes the replay size a traced hyperparameter); the loss is the
        weighted mean.

    Returns:
      A scalar; 0 on the first task.

    Example::

        ctx = TaskCtx(jnp.int32(1), key, jnp.asarray(proto.active))
        l = replay_classification(clf.apply, params, teacher, x_rep, ctx)
    """
    if heads not in ('split', 'all'):
        raise ValueError(f"heads must be 'split' or 'all', got {heads!r}")
    t = ctx.task_id
    prev = jnp.maximum(t - 1, 0)
    n = x.shape[0]
    teacher = jax.lax.stop_gradient(teacher)
    w = jnp.ones((n,), jnp.float32) if weights is None else weights

    def per_input(task):
        student_mask, teacher_mask = ctx.active[t][task], \
            ctx.active[prev][task]
        logits = classify(params, x, task)
        target = classify(teacher, x, task)
        if distill:
            return losses.distillation(logits, target, student_mask,
                                       temperature,
                                       teacher_mask=teacher_mask)
        labels = jnp.argmax(losses.mask_logits(target, teacher_mask),
                            axis=-1)
        return losses.cross_entropy(logits, labels, student_mask)

    def wmean(per):
        return jnp.sum(w * per) / jnp.maximum(jnp.sum(w), 1e-12)

    if heads == 'split':
        task = (jnp.arange(n) % jnp.maximum(t, 1)).astype(jnp.int32)
        return jnp.where(t > 0, wmean(per_input(task)), 0.0)

    all_heads = jnp.arange(num_tasks or ctx.active.shape[0])
    per_head = jax.vmap(
        lambda j: wmean(per_input(jnp.full((n,), j, jnp.int32))))(all_heads)
    head_w = (all_heads < t) / jnp.maximum(t, 1).astype(jnp.float32)
    return jnp.sum(head_w * per_head)


def gr(classify, generator: Generator, *, distill=False, temperature=2.0,
       replay_size=None, replay_count=None, heads='split',
       num_tasks=None) -> Method:
    """Generative replay with a generator trained on current and replayed
    data.

    Args:
      classify: ``(params, x, task) -> logits`` on the whole params dict.
      generator: a :class:`jcl.models.vae.Generator`; its parameters are
        added as ``params['generator']``.
      distill: soft targets (distillation, ``T**2``-scaled) instead of the
        teacher's hard labels (the NMI default).
      temperature: distillation temperature (may be traced).
      replay_size: replayed inputs drawn per step (static; default: the
        current batch size).
      replay_count: how many of those count (may be traced, e.g. a grid
        axis; default: all ``replay_size``). The first ``replay_count``
        inputs get weight 1, the rest 0, so a vmapped grid over replay
        sizes shares one program drawn at the largest size.
      heads: how replayed inputs meet the previous tasks' heads (static):
        ``'split'`` (default) splits the replayed batch evenly over the
        previous tasks, ``'all'`` scores every input under every previous
        head (the NMI code); see :func:`replay_classification`.
      num_tasks: heads to replay on with ``heads='all'`` (static; default:
        all tasks of the active table).

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
    if heads not in ('split', 'all'):
        raise ValueError(f"heads must be 'split' or 'all', got {heads!r}")

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
        weights = None
        if replay_count is not None:
            weights = (jnp.arange(n) < replay_count).astype(jnp.float32)
        w_cur = combine.current_weight(ctx.task_id)
        w_rep = combine.replay_weight(ctx.task_id)
        replay = replay_classification(
            classify, params, mstate.teacher, x_rep, ctx, distill=distill,
            temperature=temperature, num_tasks=num_tasks, heads=heads,
            weights=weights)
        gparams = params['generator']
        gen_cur = jnp.mean(generator.loss(gparams, batch.x, k_cur))
        per_rep = generator.loss(gparams, x_rep, k_rep)
        if weights is None:
            gen_rep = jnp.mean(per_rep)
        else:
            gen_rep = jnp.sum(weights * per_rep) / jnp.maximum(
                jnp.sum(weights), 1e-12)
        return {'replay': w_rep * replay, 'gen_current': w_cur * gen_cur,
                'gen_replay': w_rep * gen_rep}

    return make_method(init=init, loss=loss, consolidate=consolidate,
                       extend_params=extend_params)
