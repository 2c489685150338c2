"""A tiny continual run shared by the method tests: two tasks of a
synthetic split, a small MLP, a few steps; trained jitted or not, per
seed in a loop or all seeds under one ``vmap``."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jcl import cli
from jcl.core import taskdata as data_lib
from jcl.core.model import make_model
from jcl.models import mlp_classifier
from jcl.sweep.rows import compile_run
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


def linear_model():
    """``logits = x @ w + b`` on prepared inputs; ``init`` unused (the
    tests pass parameters)."""
    def apply(p, s, x, task, train=False):
        return {'logits': x @ p['w'] + p['b']}, s
    return make_model(init=None, apply=apply)


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


def task_runner(learner, proto, hp, *, tasks=2, vmapped=False):
    """``keys -> (state, R)``: ``tasks`` tasks trained from ``keys`` (one
    key ``[2]``, or ``[S, 2]`` with ``vmapped``). One compiled program per
    task (the task id traced), not the tasks unrolled in one."""
    train = data_lib.to_device(proto.train)
    test = data_lib.to_device(proto.test)
    active = jnp.asarray(proto.active)

    def init(key):
        return learner_lib.init_state(learner, hp, key)

    def task(state, t):
        state, _, acc = train_lib.train_task(learner, state, hp, train,
                                             test, active, t)
        return state, acc

    if vmapped:
        init, task = jax.vmap(init), jax.vmap(task, in_axes=(0, None))
    init, task = jax.jit(init), jax.jit(task)

    def go(keys):
        state, rows = init(keys), []
        for t in range(tasks):
            state, acc = task(state, jnp.int32(t))
            rows.append(acc)
        return state, jnp.stack(rows, -2)

    return go


def check_seeds_and_jit(learner, proto, hp, seeds=3, rtol=1e-5, atol=1e-6):
    """All seeds under one ``vmap`` (jitted) equal a loop over seeds, and
    one training step of the second task from the first seed's final
    state (its buffer filled) unjitted equals it jitted; returns the
    per-seed R."""
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    vstate, vR = task_runner(learner, proto, hp, vmapped=True)(keys)
    one = task_runner(learner, proto, hp)
    for i in range(seeds):
        state, R = one(keys[i])
        np.testing.assert_allclose(np.asarray(vR[i]), np.asarray(R),
                                   atol=1e-6)
        assert_trees_close(state.params,
                           jax.tree.map(lambda a, i=i: a[i], vstate.params),
                           rtol, atol)
    state = jax.tree.map(lambda a: a[0], vstate)
    step, _, _ = train_lib.make_step(learner, hp, jnp.asarray(proto.active),
                                     jnp.int32(1), state.params)
    train = data_lib.to_device(proto.train)
    raw = data_lib.gather(train, train.index[1, :learner.batch_size],
                          train.origin[1, :learner.batch_size])
    carry = (state.params, state.model_state, state.opt_state, state.mstate)
    key = jax.random.PRNGKey(5)
    jitted, _ = jax.jit(step)(carry, raw, key)
    with jax.disable_jit():
        eager, _ = step(carry, raw, key)
    assert_trees_close(eager, jitted, rtol, atol)
    return np.asarray(vR)


def assert_trees_close(a, b, rtol, atol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol,
                                   atol=atol)


def assert_refused(tmp_path, capsys, cases):
    """``jcl run`` (split MNIST, Class-IL) refuses each ``(method, a --set
    value or None, a part of the message)`` of ``cases``: exit status 2,
    the message on stderr."""
    for method, bad, says in cases:
        args = ['run', '--protocol', 'split-mnist', '--scenario', 'class',
                '--method', method, '--iters', '2',
                '--out', str(tmp_path / 'bad')]
        code = cli.main(args + (['--set', bad] if bad else []))
        assert code == 2 and says in capsys.readouterr().err, (method, bad)


def assert_rows_equal_loop(learner, proto, hp, keys, *, tasks=2,
                           atol=1e-5, rtol=1e-4):
    """The rows of :func:`jcl.compile_run`'s program (one per key; ``hp``
    of ``[S]`` arrays) equal each row trained alone under ``jit``: the
    parameters to float rounding, the accuracies after each task."""
    tr = data_lib.to_device(proto.train)
    te = data_lib.to_device(proto.test)
    act = jnp.asarray(proto.active)
    init, task, _ = compile_run(learner)
    states, rows = init(hp, keys), []
    for t in range(tasks):
        states, _, acc = task(states, hp, tr, te, act, jnp.int32(t))
        rows.append(acc)
    alone = jax.jit(functools.partial(train_lib.train_task, learner))
    for s in range(len(keys)):
        h = {k: v[s] for k, v in hp.items()}
        st = learner_lib.init_state(learner, h, keys[s])
        for t in range(tasks):
            st, _, acc = alone(st, h, tr, te, act, jnp.int32(t))
            np.testing.assert_allclose(acc, rows[t][s], atol=1e-6)
        assert_trees_close(st.params,
                           jax.tree.map(lambda x, s=s: x[s], states.params),
                           rtol, atol)
