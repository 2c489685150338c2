"""SI: the path integral, Omega, the penalty and its gradient against a
hand-computed one-parameter run, and the wiring through the training
step and ``train_task``."""

import jax
import jax.numpy as jnp
import numpy as np

import jcl
from jcl.core import losses
from jcl.core import taskdata as data_lib
from jcl.core.combine import named_chain
from jcl.core.model import make_model
from jcl.core.records import Forward, Snapshot, Step, TaskEnd
from jcl.methods.objective import supervised
from jcl.methods.synaptic_intelligence import SIState, si
from jcl.models.classifier import mlp_classifier
from jcl.tasks import protocols
from jcl.training import learner as learner_lib
from jcl.training import task as train_lib

LR = 0.1

# a one-parameter "model": SI only looks at its parameters
SCALAR = make_model(init=None, apply=None)


def theta(value):
    return {'theta': jnp.asarray(value, jnp.float32)}


def value_of(tree):
    return float(tree['theta'])


def penalty(method, mstate, params):
    terms, _ = method.loss(mstate, Forward(params, {}, None, {}, {}), None)
    assert set(terms) == {'penalty'}
    return terms['penalty']


def make_step(method):
    """One plain-SGD step on ``(theta - target)**2`` plus ``method``'s
    penalty, followed by ``method.update`` with the total gradient."""
    @jax.jit
    def step(params, mstate, target):
        def total(p):
            task = (p['theta'] - target) ** 2
            return task + penalty(method, mstate, p)

        grads = jax.grad(total)(params)
        new = jax.tree.map(lambda p, g: p - LR * g, params, grads)
        record = Step(params, new, grads, {}, None, None, {}, {})
        return new, method.update(mstate, record, None)

    return step


def consolidate(method):
    return jax.jit(lambda ms, p: method.consolidate(
        ms, TaskEnd(p, {}, None, None), None))


def test_path_integral_omega_and_penalty_by_hand():
    c, xi = 2.0, 0.1
    m = si(SCALAR, c=c, xi=xi)
    step = make_step(m)
    params = theta(0.0)
    state = m.init(Snapshot(params, {}), None)
    for _ in range(3):
        params, state = step(params, state, 1.0)
    # g = 2 (theta - 1); theta: 0 -> 0.2 -> 0.36 -> 0.488 and
    # W = sum -g * dtheta = 2*0.2 + 1.6*0.16 + 1.28*0.128 = 0.81984
    np.testing.assert_allclose(value_of(params), 0.488, rtol=1e-6)
    np.testing.assert_allclose(value_of(state.path), 0.81984, rtol=1e-5)
    state = consolidate(m)(state, params)
    omega = 0.81984 / (0.488 ** 2 + xi)
    np.testing.assert_allclose(value_of(state.omega), omega, rtol=1e-5)
    np.testing.assert_allclose(value_of(state.anchor), 0.488, rtol=1e-6)
    np.testing.assert_allclose(value_of(state.start), 0.488, rtol=1e-6)
    assert value_of(state.path) == 0.0
    # penalty c * Omega * (theta - theta*)**2, no 1/2; gradient 2 c Omega d
    value, grad = jax.jit(jax.value_and_grad(
        lambda p: penalty(m, state, p)))(theta(1.0))
    np.testing.assert_allclose(value, c * omega * 0.512 ** 2, rtol=1e-5)
    np.testing.assert_allclose(value_of(grad), 2 * c * omega * 0.512,
                               rtol=1e-5)


def test_second_task_path_uses_total_gradient_and_omega_accumulates():
    c, xi, target = 0.5, 0.1, -1.0
    m = si(SCALAR, c=c, xi=xi)
    omega0, anchor = 1.5, 0.4
    state = SIState(anchor=theta(anchor), omega=theta(omega0),
                    path=theta(0.0), start=theta(anchor))
    step = make_step(m)
    params = theta(anchor)
    t, w = anchor, 0.0
    for _ in range(4):
        params, state = step(params, state, target)
        g = 2 * (t - target) + 2 * c * omega0 * (t - anchor)
        w += -g * (-LR * g)
        t -= LR * g
    np.testing.assert_allclose(value_of(params), t, rtol=1e-5)
    np.testing.assert_allclose(value_of(state.path), w, rtol=1e-5)
    state = consolidate(m)(state, params)
    np.testing.assert_allclose(value_of(state.omega),
                               omega0 + w / ((t - anchor) ** 2 + xi),
                               rtol=1e-5)
    np.testing.assert_allclose(value_of(state.anchor), t, rtol=1e-5)


def test_hyperparameters_may_be_vmapped_tracers():
    def run(c, xi):
        m = si(SCALAR, c=c, xi=xi)
        step = make_step(m)
        params = theta(0.0)
        state = m.init(Snapshot(params, {}), None)
        params, state = step(params, state, 1.0)
        state = m.consolidate(state, TaskEnd(params, {}, None, None), None)
        return penalty(m, state, theta(1.0))

    got = np.asarray(jax.jit(jax.vmap(run))(jnp.array([1.0, 3.0]),
                                            jnp.array([0.1, 0.3])))
    # one step: W = 2 * 0.2 = 0.4, Omega = 0.4 / (0.04 + xi), d = 0.8
    np.testing.assert_allclose(
        got, [c * 0.4 / (0.04 + xi) * 0.64 for c, xi in [(1, .1), (3, .3)]],
        rtol=1e-5)


def test_frozen_leaves_and_select_are_left_out():
    labels = lambda p: {'theta': 'params', 'fixed': 'frozen'}  # noqa: E731
    model = make_model(init=None, apply=None, labels=labels)
    params = {**theta(0.5), 'fixed': jnp.float32(3.0)}
    for m in (si(model, c=1.0),
              si(SCALAR, c=1.0, select=lambda p: {'theta': p['theta']})):
        state = m.init(Snapshot(params, {}), None)
        assert value_of(state.anchor) == 0.5
        assert state.anchor.get('fixed') is None
        state = state._replace(omega={**state.omega, 'theta': 2.0})
        moved = {'theta': jnp.float32(1.5), 'fixed': jnp.float32(-7.0)}
        np.testing.assert_allclose(penalty(m, state, moved), 2.0,
                                   rtol=1e-6)


def test_training_step_updates_path_with_the_total_gradient(arrays):
    """One step of :func:`jcl.training.task.make_step` (cross-entropy +
    SI with a
    non-zero Omega): the path grows by ``-g * dtheta`` with ``g`` the
    gradient of the total loss, penalty included."""
    proto = protocols.class_split('s', arrays, 'class')
    clf = mlp_classifier((4,), num_outputs=proto.num_outputs,
                         input_dim=proto.input_shape[0])
    c = 3.0
    learner = learner_lib.Learner(
        make_model=lambda hp: clf,
        make_method=lambda hp, model: named_chain(
            ('ce', supervised()), ('si', si(model, c=c))),
        prepare=proto.prepare, num_steps=1, batch_size=8)
    hp = {'lr': 1e-2}
    act = jnp.asarray(proto.active)
    state = learner_lib.init_state(learner, hp, jax.random.PRNGKey(0))
    params = state.params
    # a previous task's importance and anchor, both away from params
    rng = np.random.RandomState(0)
    omega = jax.tree.map(lambda p: jnp.float32(rng.rand(*p.shape)), params)
    anchor = jax.tree.map(lambda p: p + 0.1, params)
    si_state = SIState(anchor, omega, jax.tree.map(jnp.zeros_like, params),
                       params)
    mstate = {'ce': (), 'si': si_state}
    raw = data_lib.gather(proto.train, proto.train.index[1, :8],
                          proto.train.origin[1, :8])
    step, tx, _ = train_lib.make_step(learner, hp, act, jnp.int32(1),
                                      params)
    carry = (params, state.model_state, state.opt_state, mstate)
    (new, _, _, mnew), metrics = jax.jit(step)(carry, raw,
                                               jax.random.PRNGKey(1))

    batch = raw._replace(x=proto.prepare(jnp.asarray(raw.x)))

    def total(p):
        out, _ = clf.apply(p, {}, batch.x, batch.task, train=True)
        ce = losses.cross_entropy(out['logits'], batch.y,
                                  act[1][batch.task])
        pen = sum(jnp.sum(o * (q - a) ** 2) for o, q, a in zip(
            jax.tree.leaves(omega), jax.tree.leaves(p),
            jax.tree.leaves(anchor)))
        return jnp.mean(ce) + c * pen

    value, g = jax.value_and_grad(total)(params)
    np.testing.assert_allclose(metrics['loss'], value, rtol=1e-5)
    want = jax.tree.map(lambda gi, n, o: -gi * (n - o), g, new, params)
    for got_leaf, want_leaf in zip(jax.tree.leaves(mnew['si'].path),
                                   jax.tree.leaves(want)):
        np.testing.assert_allclose(got_leaf, want_leaf, rtol=1e-4,
                                   atol=1e-9)
    # only the path moves during a task
    for name in ('anchor', 'omega', 'start'):
        for a, b in zip(jax.tree.leaves(getattr(mnew['si'], name)),
                        jax.tree.leaves(getattr(si_state, name))):
            np.testing.assert_array_equal(a, b)


def test_update_is_wired_through_train_task(arrays):
    proto = protocols.class_split('s', arrays, 'task')

    def make_model(hp):
        return mlp_classifier((4,), num_outputs=proto.num_outputs,
                              input_dim=proto.input_shape[0])

    def make_method(hp, model):
        return named_chain(('ce', supervised()),
                           ('si', si(model, c=hp['si.c'])))

    learner = learner_lib.Learner(make_model, make_method,
                                prepare=proto.prepare, num_steps=3,
                                batch_size=8)
    hp = {'lr': jnp.array([1e-2]), 'si.c': jnp.array([10.0])}
    init, task, _ = jcl.compile_run(learner)
    act = jnp.asarray(proto.active)
    tr, te = data_lib.to_device(proto.train), data_lib.to_device(proto.test)
    states = init(hp, jax.random.PRNGKey(0)[None])
    start = jax.tree.map(np.asarray, states.params)
    np.testing.assert_equal(
        jax.tree.map(np.asarray, states.mstate['si'].anchor), start)
    states, metrics, _ = task(states, hp, tr, te, act, jnp.int32(0))
    st = jax.tree.map(np.asarray, states.mstate['si'])
    end = jax.tree.map(np.asarray, states.params)
    np.testing.assert_equal(st.anchor, end)
    np.testing.assert_equal(st.start, end)
    assert all(np.all(p == 0) for p in jax.tree.leaves(st.path))
    omega = jax.tree.leaves(st.omega)
    assert all(np.all(np.isfinite(o)) for o in omega)
    assert sum(float(o.sum()) for o in omega) > 0  # the loss went down
    # parameters that did not move over the task got no importance
    still = 0
    for o, a, b in zip(omega, jax.tree.leaves(start), jax.tree.leaves(end)):
        assert np.all(o[a == b] == 0)
        still += int(np.sum(a == b))
    assert still > 0  # the other tasks' output units
    np.testing.assert_array_equal(metrics['si/penalty'], 0.0)  # no Omega
    states, metrics, _ = task(states, hp, tr, te, act, jnp.int32(1))
    pen = np.asarray(metrics['si/penalty'][0])
    assert pen[0] == 0.0  # the first step is at the anchor
    assert pen[-1] > 0
    np.testing.assert_allclose(
        metrics['loss'], metrics['ce/loss'] + metrics['si/penalty'],
        rtol=1e-6)
