"""ER-ACE: experience replay with an asymmetric cross-entropy (Caccia et
al., ICLR 2022, "New insights on reducing abrupt representation change in
online continual learning").

A reservoir buffer (:func:`jcl.methods.buffers.reservoir_add`) keeps raw
inputs with their labels. From the second task on, each step minimises

* the current batch's cross-entropy with the logits of the classes seen
  before that are absent from the batch masked out: a unit stays in the
  softmax if its class is in the batch or if it is the highest class seen
  so far or above it (mammoth's ``models/er_ace.py``: ``mask[:, present]
  = 1; mask[:, seen_so_far.max():] = 1``), so the new classes' gradients
  do not push the old classes' logits down; plus
* the plain cross-entropy of a buffer draw (without replacement) over
  each example's active outputs.

On the first task both are the plain current cross-entropy and nothing is
replayed (mammoth's ``current_task > 0``, its default ``task_free=0``).
The method brings its own objective on the current data (its entry's
``own_objective``), and neither term is weighted by ``1/t``.

>>> from jcl.models import mlp_classifier
>>> from jcl.tasks.protocols import pixels
>>> clf = mlp_classifier((8,), num_outputs=4, input_dim=6)
>>> m = er_ace(clf, prepare=pixels, input_shape=(6,), size=10)
>>> state = m.init(None, None)
>>> state.buffer.x.shape, int(state.top)
((10, 6), -1)
>>> ace_units(jnp.array([2, 2]), top=jnp.int32(3), num_outputs=6).tolist()
[False, False, True, True, True, True]
"""

from typing import NamedTuple

import jax.numpy as jnp

from jcl.core import losses
from jcl.core.method import Method, make_method, member_key
from jcl.core.model import Model
from jcl.core.records import Array
from jcl.methods import buffers
from jcl.methods.buffers import Buffer
from jcl.methods.entry import BUDGET, REPLAY_SIZE, MethodEntry


class AceState(NamedTuple):
    """ER-ACE's state.

    Attributes:
      buffer: the reservoir of raw examples and labels.
      top: int32 ``[]`` the highest class (output unit) seen in a training
        batch so far; -1 before the first.
    """

    buffer: Buffer
    top: Array


def ace_units(labels, *, top, num_outputs: int):
    """The units ER-ACE's current-batch softmax keeps: ``[C]`` bool, the
    classes in ``labels`` and every unit from ``top`` on."""
    units = jnp.arange(num_outputs)
    present = jnp.any(units[None, :] == labels[:, None], axis=0)
    return present | (units >= top)


def er_ace(model: Model, *, prepare, input_shape, size: int,
           minibatch: int = 10, dtype=jnp.uint8) -> Method:
    """ER-ACE.

    Args:
      model: the model trained.
      prepare: the protocol's ``raw -> model input``.
      input_shape: shape of one raw example.
      size: buffer slots (the budget, e.g. 500, 5120).
      minibatch: examples per buffer draw (static).
      dtype: the stored inputs' dtype.

    Returns:
      A method with state :class:`AceState` and terms ``'current'`` (the
      asymmetric cross-entropy of the current batch) and ``'replay'``
      (the buffer draw's cross-entropy; 0 on the first task).
    """
    def init(snap, ctx):
        del snap, ctx  # unused
        return AceState(buffers.empty(size, tuple(input_shape), dtype),
                        jnp.int32(-1))

    def loss(state, fwd, ctx):
        batch, logits = fwd.batch, fwd.outputs['logits']
        top = jnp.maximum(state.top, jnp.max(batch.y))
        keep = ace_units(batch.y, top=top, num_outputs=logits.shape[-1])
        keep = keep | (ctx.task_id == 0)
        current = losses.cross_entropy(
            logits, batch.y, ctx.mask(batch.task) & keep[None, :])
        slots, w = buffers.draw(state.buffer, member_key(ctx, 'er-ace'),
                                min(minibatch, size))
        raw = buffers.examples(state.buffer, slots)
        out, _ = model.apply(fwd.params, fwd.model_state, prepare(raw.x),
                             raw.task, train=True)
        ce = losses.cross_entropy(out['logits'], raw.y, ctx.mask(raw.task))
        replay = jnp.sum(w * ce) / jnp.maximum(jnp.sum(w), 1.0)
        return {'current': jnp.mean(current),
                'replay': jnp.where(ctx.task_id > 0, replay, 0.0)}

    def update(state, step, ctx):
        return AceState(
            buffers.reservoir_add(state.buffer, step.raw, None,
                                  member_key(ctx, 'er-ace-store')),
            jnp.maximum(state.top, jnp.max(step.raw.y)))

    return make_method(init=init, loss=loss, update=update)


def _build(ctx, hp, model):
    layout = ctx.buffer_layout()
    return er_ace(model, prepare=layout['prepare'],
                  input_shape=layout['input_shape'], dtype=layout['dtype'],
                  size=ctx.size('er-ace.budget'),
                  minibatch=ctx.size('er-ace.minibatch'))


# mammoth's best_args.py has no ER-ACE for seq-mnist (only seq-cifar100:
# lr 0.03, no momentum) and the paper no MNIST: a buffer of 500 and
# a replay draw as large as the current batch (10 on seq-mnist), ER's
# best arguments on seq-mnist at 500 and 5120 (minibatch 10, lr 0.1).
ENTRIES = [MethodEntry(
    'er-ace', _build,
    defaults=lambda p, s, b: {'er-ace.budget': 500.0,
                              'er-ace.minibatch': float(b)},
    checks={'er-ace.budget': BUDGET, 'er-ace.minibatch': REPLAY_SIZE},
    static=('er-ace.budget', 'er-ace.minibatch'),
    scenarios=('task', 'class'), own_objective=True,
    summary='experience replay with an asymmetric cross-entropy, ER-ACE '
            '(Caccia et al. 2022)')]
