"""GDumb: a greedy class-balanced sampler and a dumb learner (Prabhu et
al., ECCV 2020, "GDumb: a simple approach that questions our progress in
continual learning").

The stream is not learned from: each example is offered to a memory of
``size`` slots, kept if the memory has room, or else if its class holds
fewer than ``size / (classes seen so far)`` slots, in place of a random
example of the largest class (the paper's Algorithm 1;
:func:`greedy_add`). At the end of every task a network drawn afresh is
trained on the memory alone (:func:`fit_memory`) and it, not the
streamed network, predicts (the method's ``predict``).

The paper trains when it is asked to predict; jcl evaluates after every
task, so the network is trained at every task's end (mammoth's
``models/gdumb.py`` trains after the last task only, and fills its memory
by reservoir sampling). Training follows the authors' code
(drimpossible/GDumb ``src/main.py``): SGD with momentum 0.9, weight decay
1e-6, gradients clipped to norm 10, batch 16, one warm-up epoch at
``maxlr / 10``, then cosine annealing with warm restarts (periods of 1,
2, 4, ... epochs) from ``maxlr`` 0.05 to ``minlr`` 5e-4; 128 epochs on
MNIST, no cutmix (their MNIST runs). Not reproduced: their MNIST random
crops and their network (an MLP with batch normalisation); the protocol's
network is used.

GDumb combines with no other method (its entry's ``alone``): the other
parts' losses would train the streamed network, which does not predict.

>>> lr = [float(sgdr_rate(e, maxlr=0.05, minlr=5e-4)) for e in range(5)]
>>> [round(v, 4) for v in lr]       # warm-up, then periods 1, 2, ...
[0.005, 0.05, 0.05, 0.0252, 0.05]
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jcl.core import losses
from jcl.core.method import Method, make_method, member_key
from jcl.core.model import Model
from jcl.core.records import Array, Batch, Snapshot
from jcl.methods import buffers
from jcl.methods.buffers import Buffer
from jcl.methods.entry import (
    BUDGET,
    NONNEG,
    POSITIVE,
    REPLAY_SIZE,
    UNIT,
    MethodEntry,
    default_of,
)


class GDumbState(NamedTuple):
    """GDumb's state.

    Attributes:
      memory: the class-balanced memory of raw examples.
      counts: int32 ``[C]`` examples of each class in the memory.
      seen: bool ``[C]`` the classes offered so far.
      net: the network trained on the memory (the initial one before the
        first task's end).
    """

    memory: Buffer
    counts: Array
    seen: Array
    net: Snapshot


def greedy_add(state: GDumbState, batch: Batch, key) -> GDumbState:
    """Offers the examples of ``batch`` to the memory in turn (Algorithm 1
    of the paper: a full memory takes an example of a class below its
    share in place of a random example of the largest class)."""
    size = state.memory.y.shape[0]

    def offer(s, i):
        mem, y = s.memory, batch.y[i]
        seen = s.seen.at[y].set(True)
        full = mem.seen >= size
        share = size / jnp.sum(seen)
        largest = jnp.argmax(s.counts)
        u = jax.random.uniform(jax.random.fold_in(key, i), (size,))
        victim = jnp.argmin(jnp.where(mem.valid & (mem.y == largest), u, 2.))
        slot = jnp.where(full, victim, mem.seen)
        keep = ~full | (s.counts[y] < share)
        old = mem.y[slot]

        def put(a, v):
            return a.at[slot].set(jnp.where(keep, v, a[slot]))

        counts = s.counts.at[old].add(jnp.where(keep & full, -1, 0))
        counts = counts.at[y].add(jnp.where(keep, 1, 0))
        mem = Buffer(put(mem.x, batch.x[i]), put(mem.y, y),
                     put(mem.task, batch.task[i]), mem.logits,
                     put(mem.valid, True),
                     jnp.minimum(mem.seen + keep, size))
        return GDumbState(mem, counts, seen, s.net), None

    state, _ = jax.lax.scan(offer, state, jnp.arange(batch.y.shape[0]))
    return state


def sgdr_rate(epoch, *, maxlr, minlr):
    """The learning rate of ``epoch`` (0-based): ``maxlr / 10`` first,
    then cosine annealing from ``maxlr`` to ``minlr`` restarted after 1,
    2, 4, ... epochs (PyTorch's ``CosineAnnealingWarmRestarts(T_0=1,
    T_mult=2)`` stepped once per epoch from the third)."""
    n = jnp.maximum(jnp.asarray(epoch, jnp.float32) - 1.0, 0.0)
    cycle = jnp.floor(jnp.log2(n + 1.0) + 1e-6)
    period = 2.0 ** cycle
    t = n + 1.0 - period
    cosine = minlr + (maxlr - minlr) * (1 + jnp.cos(jnp.pi * t / period)) / 2
    return jnp.where(jnp.asarray(epoch) == 0, maxlr / 10, cosine)


def fit_memory(model: Model, memory: Buffer, ctx, key, *, prepare,
               epochs: int, batch: int, maxlr, minlr, momentum,
               weight_decay, clip) -> Snapshot:
    """A network drawn afresh, trained on the memory alone (the dumb
    learner): ``epochs`` shuffled passes in batches of ``batch`` (the last
    one smaller), each example scored over its task's active outputs."""
    size = memory.y.shape[0]
    per_epoch = -(-size // batch)
    k_init, k_order = jax.random.split(key)
    params, model_state = model.init(k_init)
    tx = optax.chain(optax.clip_by_global_norm(clip),
                     optax.add_decayed_weights(weight_decay),
                     optax.trace(decay=momentum))
    count = jnp.sum(memory.valid)

    def loss(p, ms, slots, w):
        raw = buffers.examples(memory, slots)
        out, ms = model.apply(p, ms, prepare(raw.x), raw.task, train=True)
        ce = losses.cross_entropy(out['logits'], raw.y, ctx.mask(raw.task))
        return jnp.sum(w * ce) / jnp.maximum(jnp.sum(w), 1.0), ms

    def epoch(carry, e):
        u = jax.random.uniform(jax.random.fold_in(k_order, e), (size,))
        order = jnp.argsort(jnp.where(memory.valid, u, 2.0))
        order = jnp.pad(order, (0, per_epoch * batch - size))
        rate = sgdr_rate(e, maxlr=maxlr, minlr=minlr)

        def step(carry, b):
            params, ms, opt = carry
            pos = b * batch + jnp.arange(batch)
            w = (pos < count).astype(jnp.float32)
            grads, new_ms = jax.grad(loss, has_aux=True)(
                params, ms, order[pos], w)
            direction, new_opt = tx.update(grads, opt, params)
            new = (jax.tree.map(lambda p, d: p - rate * d, params,
                                direction), new_ms, new_opt)
            return jax.tree.map(lambda a, o: jnp.where(w[0] > 0, a, o), new,
                                carry), None

        carry, _ = jax.lax.scan(step, carry, jnp.arange(per_epoch))
        return carry, None

    (params, model_state, _), _ = jax.lax.scan(
        epoch, (params, model_state, tx.init(params)), jnp.arange(epochs))
    return Snapshot(params, model_state)


def gdumb(model: Model, *, prepare, input_shape, num_outputs: int,
          size: int, epochs: int = 128, batch: int = 16, maxlr=0.05,
          minlr=5e-4, momentum=0.9, weight_decay=1e-6, clip=10.0,
          dtype=jnp.uint8) -> Method:
    """GDumb.

    Args:
      model: the network (drawn afresh at every task's end).
      prepare: the protocol's ``raw -> model input``.
      input_shape: shape of one raw example. num_outputs: classes.
      size: memory slots (the budget, e.g. 500, 5120).
      epochs: passes over the memory per training (static).
      batch: its minibatch size (static).
      maxlr, minlr: the schedule's peak and floor (:func:`sgdr_rate`).
      momentum, weight_decay, clip: SGD's momentum, its weight decay
        (added to the gradient, as PyTorch's), the gradient-norm clip.
        Every numeric argument but ``size``, ``epochs`` and ``batch`` may
        be traced.
      dtype: the stored inputs' dtype.

    Returns:
      A method with state :class:`GDumbState`, one zero term
      (``'stream'``: the stream trains nothing) and a prediction by the
      network trained on the memory.
    """
    def init(snap, ctx):
        del ctx  # unused
        return GDumbState(buffers.empty(size, tuple(input_shape), dtype),
                          jnp.zeros(num_outputs, jnp.int32),
                          jnp.zeros(num_outputs, bool), snap)

    def loss(state, fwd, ctx):
        del state, fwd, ctx  # unused
        return {'stream': jnp.float32(0.0)}

    def update(state, step, ctx):
        return greedy_add(state, step.raw, member_key(ctx, 'gdumb'))

    def consolidate(state, end, ctx):
        net = fit_memory(model, state.memory, ctx,
                         member_key(ctx, 'gdumb-fit'), prepare=prepare,
                         epochs=epochs, batch=batch, maxlr=maxlr,
                         minlr=minlr, momentum=momentum,
                         weight_decay=weight_decay, clip=clip)
        return state._replace(net=net)

    def predict(state, snap, x, task):
        del snap  # unused: the streamed network does not predict
        out, _ = model.apply(state.net.params, state.net.model_state, x,
                             task, train=False)
        return out['logits']

    return make_method(init=init, loss=loss, update=update,
                       consolidate=consolidate, predict=predict)


_NUMERIC = ('maxlr', 'minlr', 'momentum', 'weight_decay', 'clip')


def _build(ctx, hp, model):
    layout = ctx.buffer_layout()
    return gdumb(model, prepare=layout['prepare'],
                 input_shape=layout['input_shape'], dtype=layout['dtype'],
                 num_outputs=ctx.num_outputs, size=ctx.size('gdumb.budget'),
                 epochs=ctx.size('gdumb.epochs'),
                 batch=ctx.size('gdumb.batch'),
                 **{n: hp[f'gdumb.{n}'] for n in _NUMERIC})


def _defaults(protocol, scenario, batch):
    del protocol, scenario, batch  # unused
    return {'gdumb.budget': 500.0,
            'gdumb.epochs': float(default_of(gdumb, 'epochs')),
            'gdumb.batch': float(default_of(gdumb, 'batch')),
            **{f'gdumb.{n}': default_of(gdumb, n) for n in _NUMERIC}}


# The authors' MNIST settings (drimpossible/GDumb scripts/replicate.sh:
# 128 passes, no cutmix; src/opts.py and main.py: the rest); a memory of
# 500, one of their MNIST budgets.
ENTRIES = [MethodEntry(
    'gdumb', _build, defaults=_defaults,
    checks={'gdumb.budget': BUDGET, 'gdumb.epochs': BUDGET,
            'gdumb.batch': REPLAY_SIZE, 'gdumb.maxlr': POSITIVE,
            'gdumb.minlr': NONNEG, 'gdumb.momentum': UNIT,
            'gdumb.weight_decay': NONNEG, 'gdumb.clip': POSITIVE},
    static=('gdumb.budget', 'gdumb.epochs', 'gdumb.batch'),
    scenarios=('task', 'class'), own_objective=True, alone=True,
    summary='greedy class-balanced memory and a network trained on it '
            'from scratch, GDumb (Prabhu et al. 2020)')]
