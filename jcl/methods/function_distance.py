"""Function distance regularisation (FDR; Benjamin et al., ICLR 2019,
"Measuring and regularizing networks in function space"), as the DER
paper's code runs it (mammoth's ``models/fdr.py``).

At the end of task ``t`` (``t`` tasks learned) every task gets an equal
share ``size // t`` of the buffer: each earlier task keeps the first of
its stored examples (a random subset: they were stored in random order),
and the task just learned stores a random ``size // t`` of its training
examples with the logits the network gives them then. Every later step
adds ``alpha`` times the mean, over one buffer draw, of the L2 distance
between the softmax of the network's outputs and the softmax of the
stored ones, each over the units active when the example was stored (all
units on ``seq-mnist``).

mammoth takes the function-distance step as a second SGD step after the
cross-entropy's. With ``sgd_lr`` (the entry passes the learning rate
where the protocol's optimiser is plain SGD, as on ``seq-mnist``) the
method's gradient stage does the same in one step: it adds the distance's
gradient at the parameters the other terms' step reaches, ``theta - lr
g``, so that SGD's update is mammoth's two steps exactly. Without it the
distance is one more loss term (the same first-order update, differing by
``O(lr**2)``). The distance is smoothed where it vanishes
(:func:`function_distance`). mammoth's
``--alpha`` is parsed but not used (the term has weight 1): ``alpha``
defaults to 1.

>>> import jax.numpy as jnp
>>> ranks_within_task(jnp.array([0, 1, 0, 0, 1]),
...                   jnp.array([True, True, False, True, True]),
...                   num_tasks=2).tolist()
[0, 0, 1, 1, 1]
>>> share_per_task(200, 3)
Array(66, dtype=int32, weak_type=True)
"""

import jax
import jax.numpy as jnp

from jcl.core import tree
from jcl.core.method import Method, make_method, member_key
from jcl.core.model import Model
from jcl.core.taskdata import gather
from jcl.methods import buffers
from jcl.methods.buffers import Buffer
from jcl.methods.entry import (
    BUDGET,
    NONNEG,
    REPLAY_SIZE,
    MethodEntry,
    default_of,
)


def share_per_task(size: int, tasks):
    """The slots of each task once ``tasks`` tasks are stored."""
    return size // jnp.maximum(tasks, 1)


def ranks_within_task(task, valid, *, num_tasks: int):
    """``[M]`` the rank of each filled slot among its task's filled slots,
    in slot order (``rank[i]`` counts the filled slots of ``task[i]``
    before ``i``); empty slots get ranks too, unused."""
    onehot = jax.nn.one_hot(task, num_tasks, dtype=jnp.int32) * \
        valid[:, None].astype(jnp.int32)
    before = jnp.cumsum(onehot, axis=0) - onehot
    return jnp.take_along_axis(before, task[:, None], axis=1)[:, 0]


def store_with_logits(buf: Buffer, model: Model, end, ctx, *,
                      num_tasks: int, key) -> Buffer:
    """FDR's end of a task: shrink the earlier tasks to their share and
    store a random share of the task just learned with its logits."""
    size = buf.y.shape[0]
    t = ctx.task_id
    share = share_per_task(size, t + 1)
    rank = ranks_within_task(buf.task, buf.valid, num_tasks=num_tasks)
    valid = buf.valid & (rank < share)
    data = end.data
    width = data.index.shape[1]
    take = min(size, width)
    scores = jnp.where(jnp.arange(width) < data.count[t],
                       jax.random.uniform(key, (width,)), 2.0)
    neg, entries = jax.lax.top_k(-scores, take)
    found = (-neg < 2.0) & (jnp.arange(take) < share)
    raw = gather(data, data.index[t, entries], data.origin[t, entries])
    out, _ = model.apply(end.params, end.model_state, end.prepare(raw.x),
                         raw.task, train=False)
    free = jnp.argsort(valid, stable=True)[:take]   # empty slots first

    def put(a, v):
        keep = found.reshape((-1,) + (1,) * (v.ndim - 1))
        return a.at[free].set(jnp.where(keep, v, a[free]))

    return Buffer(put(buf.x, raw.x), put(buf.y, raw.y),
                  put(buf.task, raw.task), put(buf.logits, out['logits']),
                  valid.at[free].set(valid[free] | found), buf.seen)


def function_distance(logits, stored, mask, eps=1e-8):
    """``[B]`` ``sqrt(||softmax(logits) - softmax(stored)||^2 + eps)``
    over the units of ``mask``: the L2 distance, smoothed where it
    vanishes (the norm's gradient there is the direction of a difference
    made of rounding errors, of length 1; ``eps`` makes it 0 and changes
    the distance by less than ``1e-4``)."""
    def probs(z):
        return jax.nn.softmax(jnp.where(mask, z, -jnp.inf), axis=-1)
    diff = jnp.where(mask, probs(logits) - probs(stored), 0.0)
    return jnp.sqrt(jnp.sum(jnp.square(diff), axis=-1) + eps)


def fdr(model: Model, *, prepare, input_shape, num_outputs: int,
        num_tasks: int, size: int, alpha=1.0, minibatch: int = 128,
        sgd_lr=None, dtype=jnp.uint8) -> Method:
    """FDR.

    Args:
      model: the model trained.
      prepare: the protocol's ``raw -> model input``.
      input_shape: shape of one raw example. num_outputs: logits stored.
      num_tasks: tasks of the protocol.
      size: buffer slots (the budget, e.g. 200, 500, 5120).
      alpha: weight of the function distance (may be traced; mammoth's
        effective weight is 1).
      minibatch: examples per buffer draw (static).
      sgd_lr: the learning rate of a plain SGD optimiser: the distance's
        gradient is then taken after the step of the other terms
        (mammoth's second step; the term ``'function'`` is logged, not
        differentiated); ``None``: a loss term like any other.
      dtype: the stored inputs' dtype.

    Returns:
      A method with state :class:`jcl.methods.buffers.Buffer` (logits
      kept) and one term, ``'function'`` (already weighted; 0 while the
      buffer is empty), with a gradient stage when ``sgd_lr`` is given.
    """
    def init(snap, ctx):
        del snap, ctx  # unused
        return buffers.empty(size, tuple(input_shape), dtype, num_outputs)

    def distance(buf, params, model_state, ctx):
        slots, w = buffers.draw(buf, member_key(ctx, 'fdr'),
                                min(minibatch, size))
        raw = buffers.examples(buf, slots)
        out, _ = model.apply(params, model_state, prepare(raw.x), raw.task,
                             train=True)
        dist = function_distance(out['logits'], buf.logits[slots],
                                 ctx.mask(raw.task, learned=raw.task))
        return alpha * jnp.sum(w * dist) / jnp.maximum(jnp.sum(w), 1.0)

    def loss(buf, fwd, ctx):
        value = distance(buf, fwd.params, fwd.model_state, ctx)
        if sgd_lr is not None:
            value = jax.lax.stop_gradient(value)
        return {'function': value}

    def lookahead(buf, step, ctx):
        trainable, frozen = tree.split_like(step.params, step.grads)
        moved = jax.tree.map(lambda p, g: p - sgd_lr * g, trainable,
                             step.grads)
        extra = jax.grad(lambda part: distance(
            buf, tree.merge(part, frozen), step.model_state, ctx))(moved)
        return jax.tree.map(jnp.add, step.grads, extra)

    def consolidate(buf, end, ctx):
        return store_with_logits(buf, model, end, ctx, num_tasks=num_tasks,
                                 key=member_key(ctx, 'fdr-store'))

    return make_method(init=init, loss=loss, consolidate=consolidate,
                       grads=None if sgd_lr is None else lookahead)


def _build(ctx, hp, model):
    layout = ctx.buffer_layout()
    return fdr(model, prepare=layout['prepare'],
               input_shape=layout['input_shape'], dtype=layout['dtype'],
               num_outputs=ctx.num_outputs, num_tasks=ctx.num_tasks,
               size=ctx.size('fdr.budget'),
               minibatch=ctx.size('fdr.minibatch'), alpha=hp['fdr.alpha'],
               sgd_lr=hp['lr'] if ctx.settings.optimizer == 'sgd' else None)


# mammoth's best arguments for seq-mnist (utils/best_args.py, 'fdr'):
# minibatch 128 and batch 128 at every buffer; lr 0.03 at 200, 0.1 at 500
# and 5120 (their alpha, 0.5 / 0.2 / 0.2, is not used by its code).
ENTRIES = [MethodEntry(
    'fdr', _build,
    defaults=lambda p, s, b: {'fdr.budget': 200.0, 'fdr.minibatch': 128.0,
                              'fdr.alpha': default_of(fdr, 'alpha')},
    checks={'fdr.budget': BUDGET, 'fdr.minibatch': REPLAY_SIZE,
            'fdr.alpha': NONNEG},
    static=('fdr.budget', 'fdr.minibatch'),
    summary='function distance regularisation, FDR (Benjamin et al. 2019)')]
