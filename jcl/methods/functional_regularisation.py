"""FROMP (Pan et al. 2020): functional regularisation on memorable points,
as the NMI 2022 code implements it (``models/cl/fromp_optimizer.py``).

* **Memorable points**: at a task's end, for each of its classes the
  ``per_class`` training examples of largest ``sum_k s_k (1 - s_k)`` (the
  trace of the softmax Hessian over the active outputs), stored raw.
* **Posterior**: the weights' precision is ``F + prior_prec``, ``F`` the
  Gauss-Newton diagonal summed over the data of every task so far
  (:func:`jcl.methods.function_space.ggn_diagonal`); ``cov = 1 / (F +
  prior_prec)``.
* **Kernel**: at a task's end, for every task so far and every output
  ``k``, ``K_k = G_k diag(cov) G_k' + 1e-6 I`` over its memorable points
  (``G_k`` their gradients of the softmax output ``k``); its inverse and
  the softmax outputs ``m`` there are kept.
* **Training** on task ``t > 1``: from each earlier task a random
  ``ceil(B / (t - 1))`` of its memorable points (without replacement; all
  if it has fewer), and the term ``tau / 2 sum_k d_k' [K_k^-1]_S d_k``,
  ``d_k`` the change of softmax output ``k`` since ``m`` and ``[.]_S``
  the rows and columns of the points drawn. Its gradient ``tau sum_k
  G_k' [K_k^-1]_S d_k`` is what the reference's optimiser adds to the
  current batch's gradient.
* **Optimiser**: the reference replaces the optimiser by one that takes
  that sum, clips its norm to 1 and makes an Adam step. In jcl the term is
  a loss term, the clipping the method's gradient stage (of the whole
  gradient, every task), and the Adam step the learner's own (Adam
  1e-3): the same update, with no new optimiser.

The active outputs are the scenario's: the points of task ``i`` are
scored with ``ctx.active[t, i]`` while task ``t`` trains (kernels and
stored outputs use the row of the task that follows; the reference uses
all outputs in Class-IL (``--class-outputs all``) and each task's head in
Task-IL).

>>> from jcl.methods import default_of
>>> default_of(fromp, 'prior_prec'), default_of(fromp, 'clip')
(0.001, 1.0)
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jcl.core import tree
from jcl.core.method import Method, make_method, member_key
from jcl.core.model import Model
from jcl.core.records import Array, PyTree, Snapshot
from jcl.core.taskdata import gather
from jcl.methods import buffers, function_space
from jcl.methods.buffers import Buffer
from jcl.methods.entry import (
    BUDGET,
    NONNEG,
    POSITIVE,
    MethodEntry,
    by_protocol,
    default_of,
)
from jcl.methods.experience_replay import buffer_per_class

EVAL_CHUNK = 1000   # examples per chunk when scoring a task's data


class FrompState(NamedTuple):
    """FROMP's state.

    Attributes:
      buffer: the memorable points (:class:`jcl.methods.buffers.Buffer`;
        task ``i`` owns slots ``i M .. (i + 1) M - 1``, ``M = classes *
        per_class``).
      ggn: the Gauss-Newton diagonal summed over the tasks so far.
      kernel_inv: float ``[T, C, M, M]``, each task's ``K_k^-1``.
      outputs: float ``[T, M, C]``, the softmax outputs ``m`` at its
        points when its kernel was computed.
    """

    buffer: Buffer
    ggn: PyTree
    kernel_inv: Array
    outputs: Array


def fromp(model: Model, *, tau, per_class: int, num_tasks: int,
          classes_per_task: int, num_outputs: int, batch_size: int,
          prepare, input_shape: tuple, dtype=jnp.uint8,
          prior_prec=1e-3, clip=1.0, jitter: float = 1e-6,
          kernel_chunk: int = 40) -> Method:
    """FROMP as the NMI code runs it.

    Args:
      model: the classifier (the kernel differentiates ``model.main``).
      tau: the functional prior's weight (may be a tracer).
      per_class: memorable points per class (static).
      num_tasks, classes_per_task, num_outputs: the protocol's layout.
      batch_size: the current batch size ``B`` (how many points are
        drawn per step, split over the earlier tasks).
      prepare: raw inputs -> model inputs. input_shape, dtype: a raw
        input's.
      prior_prec: the weights' prior precision (may be a tracer).
      clip: the gradient's norm is clipped to this (0: no clipping).
      jitter: added to each kernel's diagonal. kernel_chunk: points per
        block of a kernel (memory only).

    Returns:
      A method with one term, ``'fromp'``, a gradient stage (the
      clipping) and :class:`FrompState`.
    """
    m = classes_per_task * per_class
    slots = batch_size + max(num_tasks - 2, 0)   # >= (t-1) ceil(B/(t-1))

    def init(snap, ctx):
        del ctx  # unused
        return FrompState(
            buffers.empty(num_tasks * m, input_shape, dtype),
            tree.zeros_like(model.main(snap.params)),
            jnp.zeros((num_tasks, num_outputs, m, m)),
            jnp.zeros((num_tasks, m, num_outputs)))

    def softmax_at(params, model_state, x, task, mask):
        z, _ = model.apply(params, model_state, prepare(x), task,
                           train=False)
        return function_space.probabilities(z['logits'], mask)

    def draw(state, ctx):
        """Slots ``j``: task ``i = j // n``, its ``j % n``-th point in a
        random order, for the earlier tasks ``i < t``."""
        t = ctx.task_id
        n = jnp.minimum(-(-batch_size // jnp.maximum(t, 1)), m)
        j = jnp.arange(slots)
        task = jnp.minimum(j // n, num_tasks - 1)
        u = jax.random.uniform(member_key(ctx, 'fromp'), (num_tasks, m))
        point = jnp.argsort(u, axis=1)[task, j % n]
        ok = (j // n < t) & state.buffer.valid[task * m + point]
        return task, point, ok

    def loss(state, fwd, ctx):
        task, point, ok = draw(state, ctx)
        raw = state.buffer.x[task * m + point]
        mask = ctx.active[ctx.task_id, task]
        s = softmax_at(fwd.params, fwd.model_state, raw, task, mask)
        d = (s - state.outputs[task, point]) * ok[:, None]       # [J, C]
        inv = state.kernel_inv.transpose(0, 2, 3, 1)[
            task[:, None], point[:, None], point[None, :]]       # [J, J, C]
        same = (task[:, None] == task[None, :]) & ok[:, None] & ok[None, :]
        quad = jnp.einsum('jk,jlk,lk->', d, inv * same[..., None], d)
        return {'fromp': 0.5 * tau * quad}

    def grads(state, step, ctx):
        del state, ctx  # unused
        norm = jnp.sqrt(sum(jnp.sum(jnp.square(g))
                            for g in jax.tree.leaves(step.grads)))
        scale = jnp.where((clip <= 0) | (norm < clip), 1.0,
                          clip / jnp.maximum(norm, 1e-30))
        return jax.tree.map(lambda g: g * scale, step.grads)

    def scores(end, t, ctx):
        """Memorability of every entry of task ``t``'s index row."""
        data = end.data
        width = data.index.shape[1]
        size = min(EVAL_CHUNK, width)
        chunks = -(-width // size)

        def one(c):
            pos = jnp.minimum(c * size + jnp.arange(size), width - 1)
            raw = gather(data, data.index[t, pos], data.origin[t, pos])
            z, _ = model.apply(end.params, end.model_state,
                               end.prepare(raw.x), raw.task, train=False)
            return function_space.memorability(z['logits'],
                                               ctx.mask(raw.task))

        return jax.lax.map(one, jnp.arange(chunks)).reshape(-1)[:width]

    def kernels(state, snap, ctx, cov):
        """Every task's kernel inverses and outputs at ``snap``, scored
        with the active outputs of the next task's row."""
        t = ctx.task_id
        row = jnp.minimum(t + 1, num_tasks - 1)

        def one(i):
            def compute(_):
                at = i * m + jnp.arange(m)
                x = state.buffer.x[at]
                task = jnp.full((m,), i, jnp.int32)
                mask = jnp.broadcast_to(ctx.active[row, i], (m, num_outputs))
                s = softmax_at(snap.params, snap.model_state, x, task, mask)
                xp = prepare(x)

                def per_output(k):
                    kk = function_space.function_kernel(
                        model, snap, xp, task, mask, cov, output=k,
                        jitter=jitter, chunk=kernel_chunk)
                    return function_space.kernel_inverse(kk, jitter)

                return jax.lax.map(per_output, jnp.arange(num_outputs)), s

            keep = (state.kernel_inv[i], state.outputs[i])
            return jax.lax.cond(i <= t, compute, lambda _: keep, None)

        return jax.lax.map(one, jnp.arange(num_tasks))

    def consolidate(state, end, ctx):
        t = ctx.task_id
        buf = buffers.store_task(state.buffer, end.data, t, None,
                                 classes_per_task=classes_per_task,
                                 per_class=per_class,
                                 priority=scores(end, t, ctx))
        state = state._replace(buffer=buf)

        def prepare_next(state):
            ggn = jax.tree.map(jnp.add, state.ggn,
                               function_space.ggn_diagonal(model, end, ctx))
            cov = jax.tree.map(lambda f: 1.0 / (f + prior_prec), ggn)
            inv, outs = kernels(state, Snapshot(end.params,
                                                end.model_state), ctx, cov)
            return FrompState(state.buffer, ggn, inv, outs)

        # after the last task nothing is regularised any more
        return jax.lax.cond(t < num_tasks - 1, prepare_next, lambda s: s,
                            state)

    return make_method(init=init, loss=loss, grads=grads,
                       consolidate=consolidate)


# the NMI code's tau (params/param_values.py): split MNIST per scenario,
# 1 on the other protocols
TAU = by_protocol({('split-mnist', 'task'): 0.01,
                   ('split-mnist', 'domain'): 10.0,
                   ('split-mnist', 'class'): 1000.0}, 1.0)


def _build(ctx, hp, model):
    from jcl.methods.networks import no_backbone
    no_backbone(ctx, 'FROMP')
    layout = ctx.buffer_layout()
    return fromp(model, tau=hp['fromp.tau'],
                 per_class=ctx.size('fromp.per_class'),
                 num_outputs=ctx.num_outputs, batch_size=ctx.batch,
                 prior_prec=hp['fromp.prior_prec'], clip=hp['fromp.clip'],
                 **layout)


ENTRIES = [MethodEntry(
    'fromp', _build,
    defaults=lambda p, s, b: {
        'fromp.tau': TAU(p, s), 'fromp.per_class': buffer_per_class(p, s),
        'fromp.prior_prec': default_of(fromp, 'prior_prec'),
        'fromp.clip': default_of(fromp, 'clip')},
    checks={'fromp.tau': NONNEG, 'fromp.per_class': BUDGET,
            'fromp.prior_prec': POSITIVE, 'fromp.clip': NONNEG},
    static=('fromp.per_class',),
    summary='FROMP: functional regularisation on memorable points '
            '(Pan et al. 2020)')]
