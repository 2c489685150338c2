"""Gradient-based sample selection (GSS-Greedy; Aljundi et al., NeurIPS
2019), as the DER paper's code runs it (mammoth 7ab9db9, ``models/gss.py``
and ``utils/gss_buffer.py``).

Each step trains on the mean cross-entropy of the current batch joined
with ``minibatch`` stored examples (without replacement; the method's own
current-data objective). After the step, the batch is offered to the
buffer, at the updated parameters:

* the batch's score ``c`` is ``1 + max_j cos(g, G_j)``: ``g`` the gradient
  of the batch's mean loss, ``G_j`` the gradients of ``score_minibatch``
  stored examples drawn at random (0.1 while the buffer is empty);
* while the buffer has room, each example takes the next slot with score
  ``c``; once it is full and ``c < 1`` (the batch's gradient points away
  from every drawn example's), each example ``i`` in turn, with its own
  score ``c_i = 1 + max_j cos(g_i, G_j)``, draws a slot ``k`` with
  probability proportional to the stored scores and replaces it with
  probability ``s_k / (s_k + c_i)``; with ``c >= 1`` the batch is skipped.

Fixed shapes throughout: the per-example gradients of the whole batch are
computed every step (they are used only when the buffer is full).

>>> from jcl.models import mlp_classifier
>>> from jcl.tasks.protocols import pixels
>>> clf = mlp_classifier((8,), num_outputs=4, input_dim=6)
>>> m = gss(clf, prepare=pixels, input_shape=(6,), size=10)
>>> state = m.init(None, None)
>>> state.buffer.x.shape, state.score.shape
((10, 6), (10,))
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jcl.core import losses, tree
from jcl.core.method import Method, make_method, member_key
from jcl.core.model import Model
from jcl.core.per_example import grads as per_example_grads
from jcl.core.records import Array
from jcl.methods import buffers
from jcl.methods.entry import BUDGET, REPLAY_SIZE, MethodEntry
from jcl.methods.experience_replay import joined_ce


class ScoredBuffer(NamedTuple):
    """A buffer with a score per slot (GSS's ``scores``)."""

    buffer: buffers.Buffer
    score: Array


def flat_rows(g) -> Array:
    """A tree of stacked gradients ``[n, ...]`` as one ``[n, p]`` matrix."""
    leaves = jax.tree.leaves(g)
    return jnp.concatenate([a.reshape(a.shape[0], -1) for a in leaves], 1)


def max_cosine(rows, refs, ref_valid, eps=1e-8):
    """``max_j cos(rows_i, refs_j)`` over the valid ``refs``: ``[n]``."""
    norms = jnp.linalg.norm(rows, axis=1)[:, None] * jnp.linalg.norm(
        refs, axis=1)[None, :]
    cos = rows @ refs.T / jnp.maximum(norms, eps)
    return jnp.max(jnp.where(ref_valid[None, :], cos, -jnp.inf), axis=1)


def offer(state: ScoredBuffer, batch, batch_score, scores, key):
    """Offers every example of the raw ``batch`` in turn (the greedy
    selection above); ``batch_score`` is ``c``, ``scores`` the ``c_i``."""
    size = state.score.shape[0]

    def one(state, i):
        buf, s = state
        k_slot, k_keep = jax.random.split(jax.random.fold_in(key, i))
        room = buf.seen < size
        slot_full = jax.random.categorical(
            k_slot, jnp.log(jnp.maximum(s, 1e-30)))
        keep = jax.random.uniform(k_keep) < s[slot_full] / (
            s[slot_full] + scores[i])
        replace = (~room) & (batch_score < 1) & keep
        slot = jnp.where(room, buf.seen, slot_full)
        put = room | replace
        new = jnp.where(room, batch_score, scores[i])

        def set_(a, v):
            return a.at[slot].set(jnp.where(put, v, a[slot]))

        buf = buf._replace(x=set_(buf.x, batch.x[i]), y=set_(buf.y, batch.y[i]),
                           task=set_(buf.task, batch.task[i]),
                           valid=set_(buf.valid, True), seen=buf.seen + 1)
        return ScoredBuffer(buf, set_(s, new)), None

    state, _ = jax.lax.scan(one, state, jnp.arange(batch.y.shape[0]))
    return state


def selection_scores(example_ce, params, batch, ref, ref_valid):
    """GSS's scores ``(c, c_i)``: one plus the largest cosine similarity
    of the gradient of the batch's mean loss (``c``), and of each
    example's loss (``c_i``, ``[B]``), with the gradients of the valid
    reference examples ``ref`` (each on its own).

    Args:
      example_ce: ``(params, x, y, task) -> [n]`` per-example losses.
      params: the parameters differentiated. batch, ref: prepared
        :class:`jcl.core.records.Batch` es. ref_valid: bool ``[m]``.
    """
    def mean_ce(p, x, y, task):
        return jnp.mean(example_ce(p, x, y, task))

    def one_ce(p, x, y, task):
        return mean_ce(p, x[None], y[None], task[None])

    G = flat_rows(per_example_grads(one_ce, params, ref.x, ref.y, ref.task))
    g = flat_rows(jax.tree.map(lambda a: a[None], jax.grad(mean_ce)(
        params, batch.x, batch.y, batch.task)))
    gi = flat_rows(per_example_grads(one_ce, params, batch.x, batch.y,
                                     batch.task))
    return (1.0 + max_cosine(g, G, ref_valid)[0],
            1.0 + max_cosine(gi, G, ref_valid))


def gss(model: Model, *, prepare, input_shape, size: int,
        minibatch: int = 10, score_minibatch: int = 10,
        dtype=jnp.uint8) -> Method:
    """GSS-Greedy.

    Args:
      model: the model trained.
      prepare: the protocol's ``raw -> model input``.
      input_shape: shape of one raw example.
      size: buffer slots (the DER paper's 200, 500, 5120).
      minibatch: stored examples joined to each batch (mammoth's
        ``minibatch_size``; static).
      score_minibatch: stored examples the scores compare against
        (``gss_minibatch_size``; static).
      dtype: the stored inputs' dtype.

    Returns:
      A method with state :class:`ScoredBuffer` and one term, ``'loss'``:
      the mean cross-entropy over the batch and the stored examples (its
      own current-data objective).
    """
    def init(snap, ctx):
        del snap, ctx  # unused
        return ScoredBuffer(buffers.empty(size, tuple(input_shape), dtype),
                            jnp.zeros(size, jnp.float32))

    def ce(params, model_state, x, y, task, ctx):
        out, _ = model.apply(params, model_state, x, task, train=True)
        return losses.cross_entropy(out['logits'], y, ctx.mask(task))

    def loss(state, fwd, ctx):
        return {'loss': joined_ce(model, prepare, state.buffer, fwd, ctx,
                                  member_key(ctx, 'gss'), minibatch)}

    def update(state, step, ctx):
        trainable, frozen = tree.split_like(step.new_params, step.grads)

        def example_ce(part, x, y, task):
            return ce(tree.merge(part, frozen), step.model_state, x, y, task,
                      ctx)

        key = member_key(ctx, 'gss-store')
        buf = state.buffer
        slots, w = buffers.draw(buf, jax.random.fold_in(key, 0),
                                min(score_minibatch, size))
        ref = buffers.examples(buf, slots)
        ref = ref._replace(x=prepare(ref.x))
        batch_score, scores = selection_scores(example_ce, trainable,
                                               step.batch, ref, w > 0)
        batch_score = jnp.where(buf.seen > 0, batch_score, 0.1)
        return offer(state, step.raw, batch_score, scores,
                     jax.random.fold_in(key, 1))

    return make_method(init=init, loss=loss, update=update)


def _build(ctx, hp, model):
    layout = ctx.buffer_layout()
    return gss(model, prepare=layout['prepare'],
               input_shape=layout['input_shape'], dtype=layout['dtype'],
               size=ctx.size('gss.budget'),
               minibatch=ctx.size('gss.minibatch'),
               score_minibatch=ctx.size('gss.score_minibatch'))


# Budget 200, minibatch 10, score minibatch 10 (with lr 0.1, batch 128,
# batch_num 1): mammoth's best arguments for seq-mnist at 200 and 500
# (utils/best_args.py); at 5120 the minibatch is 128.
ENTRIES = [MethodEntry(
    'gss', _build,
    defaults={'gss.budget': 200.0, 'gss.minibatch': 10.0,
              'gss.score_minibatch': 10.0},
    checks={'gss.budget': BUDGET, 'gss.minibatch': REPLAY_SIZE,
            'gss.score_minibatch': REPLAY_SIZE},
    static=('gss.budget', 'gss.minibatch', 'gss.score_minibatch'),
    own_objective=True,
    summary='gradient-based sample selection, GSS-Greedy (Aljundi et al. '
            '2019)')]
