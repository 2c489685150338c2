"""A method written against the interfaces from outside the library: a
reservoir buffer (Vitter's algorithm R) that needs the batch in
``update``. BUILD_NOTES.md ("Design") shows the same code."""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import jcl
from jcl.core import taskdata as data_lib
from jcl.core.method import member_key
from jcl.methods import supervised
from jcl.models import mlp_classifier
from jcl.tasks import protocols


class Reservoir(NamedTuple):
    x: jax.Array     # [M, ...] stored raw inputs (uint8 pixels)
    y: jax.Array     # [M] their targets
    task: jax.Array  # [M] their tasks
    seen: jax.Array  # [] examples offered so far


def reservoir(size: int, shape: tuple, dtype=jnp.uint8) -> jcl.Method:
    """Keeps a uniform sample of ``size`` of all examples trained on."""
    def init(snap, ctx):
        return Reservoir(jnp.zeros((size, *shape), dtype),
                         jnp.zeros(size, jnp.int32),
                         jnp.zeros(size, jnp.int32), jnp.int32(0))

    def update(buf, step, ctx):
        key = member_key(ctx, 'reservoir')

        def offer(buf, i):
            n = buf.seen + 1
            j = jax.random.randint(jax.random.fold_in(key, i), (), 0, n)
            slot = jnp.where(n <= size, n - 1, j)
            keep = (n <= size) | (j < size)

            def put(a, v):
                return a.at[slot].set(jnp.where(keep, v, a[slot]))

            return Reservoir(put(buf.x, step.raw.x[i]),
                             put(buf.y, step.raw.y[i]),
                             put(buf.task, step.raw.task[i]), n), None

        buf, _ = jax.lax.scan(offer, buf, jnp.arange(step.raw.y.shape[0]))
        return buf

    return jcl.make_method(init=init, update=update)


def test_reservoir_stores_training_examples_from_update(arrays):
    proto = protocols.class_split('s', arrays, 'class')
    learner = jcl.Learner(
        make_model=lambda hp: mlp_classifier((16,), num_outputs=10,
                                             input_dim=784),
        make_method=lambda hp, model: jcl.named_chain(
            ('ce', supervised()), ('buffer', reservoir(24, (784,)))),
        num_steps=20, batch_size=8)
    hp = {'lr': 1e-3}
    state = jcl.init_state(learner, hp, jax.random.PRNGKey(0))
    task = jax.jit(functools.partial(jcl.train_task, learner))
    train = data_lib.to_device(proto.train)
    active = jnp.asarray(proto.active)
    for t in range(2):
        state, _, _ = task(state, hp, train, None, active, jnp.int32(t))
    buf = state.mstate['buffer']
    assert int(buf.seen) == 2 * 20 * 8
    assert buf.x.dtype == jnp.uint8  # raw bytes, as gathered
    pool = arrays['train_x'].reshape(len(arrays['train_x']), -1)
    for x, y, t in zip(np.asarray(buf.x), np.asarray(buf.y),
                       np.asarray(buf.task)):
        rows = np.flatnonzero((pool == x).all(1))
        assert len(rows) >= 1  # a real training example ...
        assert arrays['train_y'][rows[0]] == y and y // 2 == t  # ... its label
    # both tasks are represented (each offered half of the examples)
    assert set(np.asarray(buf.task).tolist()) == {0, 1}
