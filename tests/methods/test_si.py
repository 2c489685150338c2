"""SI: the path integral, Omega, the penalty and its gradient against a
hand-computed one-parameter run, and the wiring through ``train_task``."""

import jax
import jax.numpy as jnp
import numpy as np

from jcl import data as data_lib
from jcl import train as train_lib
from jcl.combine import named_chain
from jcl.methods.si import SIState, si
from jcl.methods.supervised import supervised
from jcl.models.classifier import mlp_classifier

LR = 0.1


def theta(value):
    return {'classifier': {'theta': jnp.asarray(value, jnp.float32)}}


def value_of(tree):
    return float(tree['theta'])


def make_step(method):
    """One plain-SGD step on ``(theta - target)**2`` plus ``method``'s
    penalty, followed by ``method.update`` with the total gradient."""
    @jax.jit
    def step(params, mstate, target):
        def total(p):
            task = (p['classifier']['theta'] - target) ** 2
            return task + method.loss(p, mstate, None, None)['penalty']

        grads = jax.grad(total)(params)
        new = jax.tree.map(lambda p, g: p - LR * g, params, grads)
        return new, method.update(mstate, params, grads, new, None)

    return step


def test_path_integral_omega_and_penalty_by_hand():
    c, xi = 2.0, 0.1
    m = si(c=c, xi=xi)
    step = make_step(m)
    params = theta(0.0)
    state = m.init(params, None)
    for _ in range(3):
        params, state = step(params, state, 1.0)
    # g = 2 (theta - 1); theta: 0 -> 0.2 -> 0.36 -> 0.488 and
    # W = sum -g * dtheta = 2*0.2 + 1.6*0.16 + 1.28*0.128 = 0.81984
    np.testing.assert_allclose(value_of(params['classifier']), 0.488,
                               rtol=1e-6)
    np.testing.assert_allclose(value_of(state.path), 0.81984, rtol=1e-5)
    state = jax.jit(m.consolidate)(state, params, None, None)
    omega = 0.81984 / (0.488 ** 2 + xi)
    np.testing.assert_allclose(value_of(state.omega), omega, rtol=1e-5)
    np.testing.assert_allclose(value_of(state.anchor), 0.488, rtol=1e-6)
    np.testing.assert_allclose(value_of(state.start), 0.488, rtol=1e-6)
    assert value_of(state.path) == 0.0
    # penalty c * Omega * (theta - theta*)**2, no 1/2; gradient 2 c Omega d
    value, grad = jax.jit(jax.value_and_grad(
        lambda p: m.loss(p, state, None, None)['penalty']))(theta(1.0))
    np.testing.assert_allclose(value, c * omega * 0.512 ** 2, rtol=1e-5)
    np.testing.assert_allclose(value_of(grad['classifier']),
                               2 * c * omega * 0.512, rtol=1e-5)


def test_second_task_path_uses_total_gradient_and_omega_accumulates():
    c, xi, target = 0.5, 0.1, -1.0
    m = si(c=c, xi=xi)
    omega0, anchor = 1.5, 0.4
    state = SIState(anchor=theta(anchor)['classifier'],
                    omega=theta(omega0)['classifier'],
                    path=theta(0.0)['classifier'],
                    start=theta(anchor)['classifier'])
    step = make_step(m)
    params = theta(anchor)
    t, w = anchor, 0.0
    for _ in range(4):
        params, state = step(params, state, target)
        g = 2 * (t - target) + 2 * c * omega0 * (t - anchor)
        w += -g * (-LR * g)
        t -= LR * g
    np.testing.assert_allclose(value_of(params['classifier']), t, rtol=1e-5)
    np.testing.assert_allclose(value_of(state.path), w, rtol=1e-5)
    state = jax.jit(m.consolidate)(state, params, None, None)
    np.testing.assert_allclose(value_of(state.omega),
                               omega0 + w / ((t - anchor) ** 2 + xi),
                               rtol=1e-5)
    np.testing.assert_allclose(value_of(state.anchor), t, rtol=1e-5)


def test_hyperparameters_may_be_vmapped_tracers():
    def run(c, xi):
        m = si(c=c, xi=xi)
        step = make_step(m)
        params = theta(0.0)
        state = m.init(params, None)
        params, state = step(params, state, 1.0)
        state = m.consolidate(state, params, None, None)
        return m.loss(theta(1.0), state, None, None)['penalty']

    got = np.asarray(jax.jit(jax.vmap(run))(jnp.array([1.0, 3.0]),
                                            jnp.array([0.1, 0.3])))
    # one step: W = 2 * 0.2 = 0.4, Omega = 0.4 / (0.04 + xi), d = 0.8
    np.testing.assert_allclose(
        got, [c * 0.4 / (0.04 + xi) * 0.64 for c, xi in [(1, .1), (3, .3)]],
        rtol=1e-5)


def test_update_is_wired_through_train_task(arrays):
    proto = data_lib.class_split('s', arrays, 'task')
    clf = mlp_classifier((4,), num_outputs=proto.num_outputs,
                         input_dim=proto.input_shape[0])

    def make_method(hp):
        return named_chain(('ce', supervised(clf.apply)),
                           ('si', si(c=hp['si.c'])))

    learner = train_lib.Learner(clf.init, clf.apply, make_method,
                                train_lib.adam, num_steps=3, batch_size=8)
    hp = {'lr': jnp.array([1e-2]), 'si.c': jnp.array([10.0])}
    init, task, _ = train_lib.compile_run(learner)
    act = jnp.asarray(proto.active)
    tr, te = data_lib.to_device(proto.train), data_lib.to_device(proto.test)
    states = init(hp, jax.random.PRNGKey(0)[None], act)
    start = jax.tree.map(np.asarray, states.params['classifier'])
    np.testing.assert_equal(
        jax.tree.map(np.asarray, states.mstate['si'].anchor), start)
    states, metrics, _ = task(states, hp, tr, te, act, jnp.int32(0))
    st = jax.tree.map(np.asarray, states.mstate['si'])
    end = jax.tree.map(np.asarray, states.params['classifier'])
    np.testing.assert_equal(st.anchor, end)
    np.testing.assert_equal(st.start, end)
    assert all(np.all(p == 0) for p in jax.tree.leaves(st.path))
    omega = jax.tree.leaves(st.omega)
    assert all(np.all(np.isfinite(o)) for o in omega)
    assert sum(float(o.sum()) for o in omega) > 0  # the loss went down
    assert float(metrics['si/penalty'].max()) == 0.0  # no Omega yet
    states, metrics, _ = task(states, hp, tr, te, act, jnp.int32(1))
    assert float(metrics['si/penalty'][0, -1]) > 0
