"""A tiny continual run shared by the method tests: two tasks of a
synthetic split, a small MLP, a few steps; trained jitted or not, per
seed in a loop or all seeds under one ``vmap``."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jcl.core import taskdata as data_lib
from jcl.models import mlp_classifier
from jcl.tasks import protocols
from jcl.training import learner as learner_lib
from jcl.training import task as train_lib

D = 12          # input pixels
C = 4           # outputs: two tasks of two classes


def tiny_protocol(scenario='class', n=48, seed=0):
    """Two tasks of two classes; class ``c`` lights pixels ``3c..3c+2``."""
    rng = np.random.RandomState(seed)

    def make(m):
        y = np.arange(m) % C
        x = rng.randint(0, 60, (m, D)).astype(np.uint8)
        for c in range(C):
            x[y == c, 3 * c:3 * c + 3] = 240
        return x, y.astype(np.uint8)

    tx, ty = make(n)
    vx, vy = make(n // 2)
    return protocols.class_split('tiny', dict(train_x=tx, train_y=ty,
                                              test_x=vx, test_y=vy),
                                 scenario)


def tiny_model():
    return mlp_classifier((8,), num_outputs=C, input_dim=D)


def layout(proto):
    """The keyword arguments of a buffer method on ``proto``."""
    return dict(prepare=proto.prepare, input_shape=(D,),
                dtype=jnp.uint8)


def make_learner(make_method, *, steps=5, batch=4, optimizer=None):
    kw = {} if optimizer is None else {'make_optimizer': optimizer}
    return learner_lib.Learner(lambda hp: tiny_model(), make_method,
                               num_steps=steps, batch_size=batch, **kw)


def run(learner, proto, hp, key, *, jit=True, tasks=2):
    """Trains ``tasks`` tasks from ``key``: ``(state, R)``."""
    train = data_lib.to_device(proto.train)
    test = data_lib.to_device(proto.test)
    active = jnp.asarray(proto.active)

    def go(key):
        state = learner_lib.init_state(learner, hp, key)
        rows = []
        for t in range(tasks):
            state, _, acc = train_lib.train_task(learner, state, hp, train,
                                                 test, active, jnp.int32(t))
            rows.append(acc)
        return state, jnp.stack(rows)

    return (jax.jit(go) if jit else go)(key)


def check_seeds_and_jit(learner, proto, hp, seeds=3, rtol=1e-5, atol=1e-6):
    """All seeds under one ``vmap`` (jitted) equal a loop over seeds, and
    the first seed unjitted equals it jitted; returns the per-seed R."""
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    vstate, vR = jax.jit(jax.vmap(functools.partial(
        run, learner, proto, hp, jit=False)))(keys)
    for i in range(seeds):
        state, R = run(learner, proto, hp, keys[i])
        np.testing.assert_allclose(np.asarray(vR[i]), np.asarray(R),
                                   atol=1e-6)
        for a, b in zip(jax.tree.leaves(state.params),
                        jax.tree.leaves(vstate.params)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b[i]),
                                       rtol=rtol, atol=atol)
        if i == 0:
            eager, R0 = run(learner, proto, hp, keys[0], jit=False)
            for a, b in zip(jax.tree.leaves(eager.params),
                            jax.tree.leaves(state.params)):
                np.testing.assert_allclose(np.asarray(a), np.asarray(b),
                                           rtol=rtol, atol=atol)
    return np.asarray(vR)
