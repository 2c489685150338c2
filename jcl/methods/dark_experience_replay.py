"""Dark experience replay (DER and DER++; Buzzega et al., NeurIPS 2020).

A reservoir buffer (:func:`jcl.methods.buffers.reservoir_add`) keeps raw inputs
with their targets and the logits the model gave them when they were
trained on (before that step's update). Each step adds, to the current
cross-entropy, ``alpha`` times the mean squared error between the logits
on one buffer draw and their stored logits, and ``beta`` times the
cross-entropy of a second, independent draw with its stored labels (two
draws, as the DER paper's code does). DER (:func:`der`) is the logit
term alone: one draw per step (mammoth's ``models/der.py``). Not weighted
by ``1/t``: replay starts as soon as the buffer holds examples, within
the first task.

>>> from jcl.models import mlp_classifier
>>> from jcl.tasks.protocols import pixels
>>> clf = mlp_classifier((8,), num_outputs=4, input_dim=6)
>>> m = derpp(clf, prepare=pixels, input_shape=(6,), num_outputs=4,
...           size=10, alpha=0.2, beta=0.5)
>>> buf = m.init(None, None)
>>> buf.logits.shape
(10, 4)
>>> der(clf, prepare=pixels, input_shape=(6,), num_outputs=4, size=10,
...     alpha=0.2).init(None, None).x.shape
(10, 6)
"""

import jax
import jax.numpy as jnp

from jcl.core import losses
from jcl.core.method import Method, make_method, member_key
from jcl.core.model import Model
from jcl.methods import buffers
from jcl.methods.entry import BUDGET, NONNEG, REPLAY_SIZE, MethodEntry


def derpp(model: Model, *, prepare, input_shape, num_outputs: int,
          size: int, alpha, beta, minibatch: int = 128,
          dtype=jnp.uint8, name: str = 'derpp') -> Method:
    """DER++ (``beta=None``: DER, :func:`der`).

    Args:
      model: the model trained.
      prepare: the protocol's ``raw -> model input``.
      input_shape: shape of one raw example. num_outputs: logits stored.
      size: buffer slots (the budget, e.g. 200, 500, 5120).
      alpha: weight of the logit-matching term (may be traced).
      beta: weight of the label term (may be traced); ``None``: no
        label term and no second draw (DER).
      minibatch: examples per buffer draw (static).
      dtype: the stored inputs' dtype.
      name: the member name its random draws are keyed by.

    Returns:
      A method with state :class:`jcl.methods.buffers.Buffer` and terms
      ``'logits'`` and ``'labels'`` (already weighted; ``'logits'`` alone
      when ``beta`` is ``None``).
    """
    def init(snap, ctx):
        del snap, ctx  # unused
        return buffers.empty(size, tuple(input_shape), dtype, num_outputs)

    def scored(fwd, ctx, buf, key):
        slots, w = buffers.draw(buf, key, min(minibatch, size))
        raw = buffers.examples(buf, slots)
        out, _ = model.apply(fwd.params, fwd.model_state, prepare(raw.x),
                             raw.task, train=True)
        return raw, out['logits'], buf.logits[slots], w

    def loss(buf, fwd, ctx):
        key = member_key(ctx, name)
        _, z, stored, w1 = scored(fwd, ctx, buf, jax.random.fold_in(key, 1))
        mse = jnp.mean(jnp.square(z - stored), axis=-1)
        terms = {'logits': alpha * _wmean(w1, mse)}
        if beta is not None:
            raw, z2, _, w2 = scored(fwd, ctx, buf, jax.random.fold_in(key, 2))
            ce = losses.cross_entropy(z2, raw.y, ctx.mask(raw.task))
            terms['labels'] = beta * _wmean(w2, ce)
        return terms

    def update(buf, step, ctx):
        return buffers.reservoir_add(buf, step.raw, step.outputs['logits'],
                                     member_key(ctx, f'{name}-store'))

    return make_method(init=init, loss=loss, update=update)


def der(model: Model, *, prepare, input_shape, num_outputs: int,
        size: int, alpha, minibatch: int = 128,
        dtype=jnp.uint8) -> Method:
    """DER: the current cross-entropy plus ``alpha`` times the mean squared
    error between the logits on one buffer draw and the logits stored with
    it (:func:`derpp` without the label term; arguments as there).

    Returns:
      A method with state :class:`jcl.methods.buffers.Buffer` and one
      term, ``'logits'`` (already weighted).
    """
    return derpp(model, prepare=prepare, input_shape=input_shape,
                 num_outputs=num_outputs, size=size, alpha=alpha, beta=None,
                 minibatch=minibatch, dtype=dtype, name='der')


def _wmean(w, per):
    return jnp.sum(w * per) / jnp.maximum(jnp.sum(w), 1.0)


def _build(ctx, hp, model):
    layout = ctx.buffer_layout()
    return derpp(model, prepare=layout['prepare'],
                 input_shape=layout['input_shape'], dtype=layout['dtype'],
                 num_outputs=ctx.num_outputs, size=ctx.size('derpp.budget'),
                 minibatch=ctx.size('derpp.minibatch'),
                 alpha=hp['derpp.alpha'], beta=hp['derpp.beta'])


def _build_der(ctx, hp, model):
    layout = ctx.buffer_layout()
    return der(model, prepare=layout['prepare'],
               input_shape=layout['input_shape'], dtype=layout['dtype'],
               num_outputs=ctx.num_outputs, size=ctx.size('der.budget'),
               minibatch=ctx.size('der.minibatch'), alpha=hp['der.alpha'])


# DER++'s buffer of 200 and alpha 0.2, beta 1.0: the DER paper's best
# arguments for sequential MNIST at that buffer (mammoth's
# best_args.json). DER's at 200: minibatch 10 (the batch), alpha 0.2, lr
# 0.03 (the protocol's); at 500: minibatch 128, alpha 1.0, lr 0.03; at
# 5120: minibatch 128, alpha 0.5, lr 0.1 (mammoth's utils/best_args.py,
# 'seq-mnist', 'der').
ENTRIES = [MethodEntry(
    'derpp', _build,
    defaults=lambda p, s, b: {'derpp.budget': 200.0,
                              'derpp.minibatch': float(b),
                              'derpp.alpha': 0.2, 'derpp.beta': 1.0},
    checks={'derpp.budget': BUDGET, 'derpp.minibatch': REPLAY_SIZE,
            'derpp.alpha': NONNEG, 'derpp.beta': NONNEG},
    static=('derpp.budget', 'derpp.minibatch'),
    summary='dark experience replay, DER++ (Buzzega et al. 2020)'),
    MethodEntry(
        'der', _build_der,
        defaults=lambda p, s, b: {'der.budget': 200.0,
                                  'der.minibatch': float(b),
                                  'der.alpha': 0.2},
        checks={'der.budget': BUDGET, 'der.minibatch': REPLAY_SIZE,
                'der.alpha': NONNEG},
        static=('der.budget', 'der.minibatch'),
        summary='dark experience replay, DER (Buzzega et al. 2020): DER++ '
                'without the label term')]
