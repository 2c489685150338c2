"""Generative replay (DGR, Shin et al. 2017; the NMI-2022 baseline).

On task ``t`` (0-based) a frozen snapshot of the model, taken at the end
of task ``t - 1``, provides replay: its generator draws inputs and its
classifier labels them (hard ``argmax`` labels, or soft targets with
``distill=True``). The student learns them as a classifier and as a
generator. The terms are on replayed data, so
:func:`jcl.combine.replay_weighted` weighs them by ``1 - 1/t``; the
current data's terms (cross-entropy, :func:`jcl.methods.generative.
generator_loss`) get ``1/t``.

>>> from jcl import combine
>>> from jcl.methods import generator_loss, supervised
>>> from jcl.models import mlp_classifier, paired, vae_model
>>> model = paired(mlp_classifier((8,), num_outputs=4, input_dim=6),
...                vae_model((8,), latent=2, input_dim=6))
>>> method = combine.replay_weighted(
...     current=[('ce', supervised()), ('gen', generator_loss(model))],
...     replay=[('gr', generative_replay(model))])
"""

import jax
import jax.numpy as jnp

from jcl import losses
from jcl.method import Method, make_method, stream
from jcl.methods.generative import negative_elbo
from jcl.model import Model, logits, view
from jcl.types import Snapshot

HEADS = ('split', 'all')


def replay_loss(student_logits, teacher_logits, student_mask,
                teacher_mask, *, distill=False, temperature=2.0):
    """Per-input loss of replayed inputs: the student's cross-entropy
    against the teacher's ``argmax`` over its active outputs, or (with
    ``distill``) distillation at ``temperature``, scaled by ``T**2``.

    Returns:
      ``[N]``.
    """
    if distill:
        return losses.distillation(student_logits, teacher_logits,
                                   student_mask, temperature,
                                   teacher_mask=teacher_mask)
    labels = jnp.argmax(losses.mask_logits(teacher_logits, teacher_mask),
                        axis=-1)
    return losses.cross_entropy(student_logits, labels, student_mask)


def _wmean(w, per):
    return jnp.sum(w * per) / jnp.maximum(jnp.sum(w), 1e-12)


def generative_replay(model: Model, *, distill=False, temperature=2.0,
                      replay_size=None, replay_count=None, heads='split',
                      num_tasks=None) -> Method:
    """Replay of inputs drawn from the previous task's generator.

    A replayed input scored under head ``j`` (task argument ``j``, so
    task-specific gates apply) is scored by the teacher over
    ``ctx.active[t - 1, j]`` and by the student over ``ctx.active[t, j]``.
    ``heads`` says which inputs go to which head: ``'split'`` scores input
    ``i`` under head ``i mod t`` (the replayed batch split evenly over the
    previous tasks, one forward pass per model); ``'all'`` scores every
    input under every previous head and averages the heads (the NMI
    code's Task-IL replay: ``t`` times the compute, the same expected
    loss). Outside Task-IL the heads are equal.

    Args:
      model: a model with a ``'sample'`` view and a generator's outputs
        (:func:`jcl.models.paired`).
      distill: soft targets instead of the teacher's hard labels.
      temperature: distillation temperature (may be traced).
      replay_size: replayed inputs drawn per step (static; default: the
        current batch size).
      replay_count: how many of those count (may be traced, e.g. a grid
        axis; default: all). The first ``replay_count`` inputs get weight
        1, the rest 0, so a vmapped grid over replay sizes shares one
        program drawn at the largest size.
      heads: ``'split'`` or ``'all'`` (static).
      num_tasks: heads to replay on with ``heads='all'`` (static; default:
        all tasks of the active table).

    Returns:
      A method whose state is the teacher :class:`jcl.types.Snapshot`,
      with terms ``'replay'`` (the classifier on replayed inputs) and
      ``'generator'`` (the generator's negative ELBO on them); both are
      0 on the first task.
    """
    if heads not in HEADS:
        raise ValueError(f"heads must be 'split' or 'all', got {heads!r}")
    sample = view(model, 'sample', 'generative replay')

    def init(snap, ctx):
        del ctx  # unused
        return snap

    def loss(teacher, fwd, ctx):
        t = ctx.task_id
        prev = jnp.maximum(t - 1, 0)
        n = replay_size or fwd.batch.x.shape[0]
        k_sample, k_gen = jax.random.split(stream(ctx, 'replay'))
        x = jax.lax.stop_gradient(sample(teacher.params,
                                         teacher.model_state, k_sample, n))
        w = (jnp.ones((n,), jnp.float32) if replay_count is None
             else (jnp.arange(n) < replay_count).astype(jnp.float32))

        def scored(task):
            out, _ = model.apply(fwd.params, fwd.model_state, x, task,
                                 train=True)
            target = jax.lax.stop_gradient(logits(model, teacher, x, task))
            per = replay_loss(out['logits'], target, ctx.active[t][task],
                              ctx.active[prev][task], distill=distill,
                              temperature=temperature)
            return _wmean(w, per), out

        if heads == 'split':
            task = (jnp.arange(n) % jnp.maximum(t, 1)).astype(jnp.int32)
            cls, out = scored(task)
        else:
            all_heads = jnp.arange(num_tasks or ctx.active.shape[0])
            per_head = jax.vmap(lambda j: scored(
                jnp.full((n,), j, jnp.int32))[0])(all_heads)
            head_w = (all_heads < t) / jnp.maximum(t, 1).astype(jnp.float32)
            cls = jnp.sum(head_w * per_head)
            out = scored(jnp.zeros((n,), jnp.int32))[1]
        gen = _wmean(w, negative_elbo(model, fwd.params, fwd.model_state,
                                      out, x, k_gen))
        first = t == 0
        return {'replay': jnp.where(first, 0.0, cls),
                'generator': jnp.where(first, 0.0, gen)}

    def consolidate(teacher, end, ctx):
        del teacher, ctx  # unused
        return Snapshot(end.params, end.model_state)

    return make_method(init=init, loss=loss, consolidate=consolidate)
