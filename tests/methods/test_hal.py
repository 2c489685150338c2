"""Oracles of HAL: the anchor term's gradient stage by hand, phi and the
anchors at a task's end against a loop of the same steps, jit and vmap
over seeds, and the command line."""

import json

import jax
import jax.numpy as jnp
import numpy as np
from tiny_runs import assert_refused

from jcl import cli
from jcl.core import losses
from jcl.core.method import member_key
from jcl.core.model import make_model
from jcl.core.records import Batch, Snapshot, Step, TaskCtx, TaskEnd
from jcl.core.taskdata import to_device
from jcl.methods import buffers
from jcl.methods.hindsight_anchor_learning import hal
from jcl.tasks import protocols


def linear_model():
    """logits = x W + b; features = x."""
    def apply(p, s, x, task, train=False):
        return {'logits': x @ p['w'] + p['b'], 'features': x}, s
    return make_model(init=None, apply=apply)


def scale(x):
    return x.astype(jnp.float32) / 10.0


def one_d(lam=0.1, lr=0.5):
    return hal(linear_model(), prepare=scale, input_shape=(1,), num_tasks=2,
               classes_per_task=1, size=4, lr=lr, beta=0.5, gamma=0.1,
               lam=lam)


def _snap(params):
    return Snapshot(params, {})


def ctx(t, key=7):
    active = protocols.active_table('class', [[0], [1]])
    return TaskCtx(jnp.int32(t), jax.random.PRNGKey(key), jnp.asarray(active))


def test_anchor_term_by_hand():
    """f(w, b; a) = a w + b with w = 2, b = 0, g = (1, 0), lr 0.5: the
    look-ahead is w' = 1.5, so on anchors 1 and 3 the targets are 1.5 and
    4.5, the outputs 2 and 6; lambda mean((target - f)^2) has gradient
    lambda (2 * 0.5 * 1 + 2 * 1.5 * 3) / 2 = 5 lambda in w and
    lambda (2 * 0.5 + 2 * 1.5) / 2 = 2 lambda in b."""
    m = one_d()
    params = {'w': jnp.array([[2.0]]), 'b': jnp.array([0.0])}
    state = m.init(_snap(params), ctx(0))
    state = state._replace(anchors=jnp.array([[1.0], [3.0]]),
                           anchor_valid=jnp.array([True, True]))
    g = {'w': jnp.array([[1.0]]), 'b': jnp.array([0.0])}
    out = m.grads(state, Step(params, params, g, {}, None, None, {}, {}),
                  ctx(1))
    np.testing.assert_allclose(out['w'], [[1.0 + 0.5]], rtol=1e-6)
    np.testing.assert_allclose(out['b'], [0.2], rtol=1e-6)
    # anchors not learned yet add nothing
    none = state._replace(anchor_valid=jnp.array([False, False]))
    out = m.grads(none, Step(params, params, g, {}, None, None, {}, {}),
                  ctx(0))
    np.testing.assert_allclose(out['w'], g['w'])


def test_anchor_stage_jit_and_vmap_over_seeds():
    m = one_d()
    params = {'w': jnp.array([[2.0]]), 'b': jnp.array([0.3])}
    state = m.init(_snap(params), ctx(0))._replace(
        anchors=jnp.array([[1.0], [-2.0]]),
        anchor_valid=jnp.array([True, False]))
    gs = {'w': jnp.arange(4.0).reshape(4, 1, 1),
          'b': -jnp.arange(4.0)[:, None]}

    def stage(g):
        return m.grads(state, Step(params, params, g, {}, None, None, {}, {}),
                       ctx(1))

    mapped = jax.jit(jax.vmap(stage))(gs)
    for i in range(4):
        gi = jax.tree.map(lambda a, i=i: a[i], gs)
        want = stage(gi)
        for k in params:
            np.testing.assert_allclose(mapped[k][i], want[k], rtol=1e-6)
            np.testing.assert_allclose(jax.jit(stage)(gi)[k], want[k],
                                       rtol=1e-6)


def test_phi_is_a_running_mean_of_the_updated_features():
    m = one_d()
    params = {'w': jnp.array([[2.0]]), 'b': jnp.array([0.0])}
    state = m.init(_snap(params), ctx(0))._replace(phi=jnp.array([4.0]))
    raw = Batch(jnp.array([[10], [30]], jnp.uint8), jnp.array([0, 0]),
                jnp.array([0, 0]))
    step = Step(params, params, params, {}, raw._replace(x=scale(raw.x)),
                raw, {}, {})
    new = m.update(state, step, ctx(0))
    np.testing.assert_allclose(new.phi, [0.5 * 4.0 + 0.5 * 2.0])
    assert int(new.buffer.seen) == 2 and new.buffer.valid.sum() == 2


def test_anchors_follow_the_same_steps_by_hand(arrays):
    """The anchors at a task's end: one SGD step of fine-tuning on a buffer
    draw, then ``anchor_steps`` SGD steps on CE(theta_t) - CE(theta_m) +
    gamma |h - phi|^2 from the same uniform start, per class."""
    proto = protocols.class_split('synthetic', arrays, 'class')
    data = to_device(proto.train)
    rng = np.random.RandomState(0)
    params = {'w': jnp.asarray(rng.randn(784, 10) * 0.01, jnp.float32),
              'b': jnp.zeros(10)}

    def make(steps):
        return hal(linear_model(), prepare=proto.prepare,
                   input_shape=(784,), num_tasks=5, classes_per_task=2,
                   size=16, lr=0.1, beta=0.5, gamma=0.05, lam=0.1, batch=8,
                   anchor_steps=steps)

    c = TaskCtx(jnp.int32(1), jax.random.PRNGKey(3), jnp.asarray(proto.active))
    state = make(3).init(_snap(params), c)
    raw = Batch(jnp.asarray(rng.randint(0, 255, (16, 784)), jnp.uint8),
                jnp.asarray(rng.randint(0, 4, 16)), jnp.zeros(16, jnp.int32))
    state = state._replace(buffer=buffers.reservoir_add(
        state.buffer, raw, None, jax.random.PRNGKey(0)),
        phi=jnp.asarray(rng.rand(784), jnp.float32))
    end = TaskEnd(params, {}, data, proto.prepare)
    start = make(0).consolidate(state, end, c).anchors[2:4]
    got = jax.jit(make(3).consolidate)(state, end, c)

    def ce(p, x, y):
        z = x @ p['w'] + p['b']
        return losses.cross_entropy(z, y, c.mask(jnp.ones_like(y)))

    slots, w = buffers.draw(state.buffer, jax.random.fold_in(
        member_key(c, 'hal-anchors'), 0), 8)
    x, y = proto.prepare(state.buffer.x[slots]), state.buffer.y[slots]
    g = jax.grad(lambda p: jnp.sum(w * ce(p, x, y)) / jnp.sum(w))(params)
    theta_m = jax.tree.map(lambda p, d: p - 0.1 * d, params, g)
    for r, cls in enumerate((2, 3)):           # task 1's classes
        e = start[r]
        for _ in range(3):
            def loss(e):
                t = ce(params, e[None], jnp.array([cls]))[0]
                mm = ce(theta_m, e[None], jnp.array([cls]))[0]
                return t - mm + 0.05 * jnp.sum(jnp.square(e - state.phi))
            e = e - 0.1 * jax.grad(loss)(e)
        np.testing.assert_allclose(got.anchors[2 + r], e, rtol=1e-4,
                                   atol=1e-5)
    assert got.anchor_class[2:4].tolist() == [2, 3]
    assert got.anchor_valid.tolist() == [False] * 2 + [True] * 2 + [False] * 6
    assert float(jnp.abs(got.phi).max()) == 0.0            # reset
    assert float(jnp.abs(got.anchors[2:4] - start).max()) > 1e-4


def test_hal_runs_and_refuses_bad_values(tmp_path, capsys):
    out = tmp_path / 'hal'
    code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                     'class', '--method', 'hal+si', '--iters', '4',
                     '--batch', '16', '--hidden', '16', '--set',
                     'hal.budget=40', '--set', 'hal.anchor_steps=3',
                     '--out', str(out)])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['hal+si']['hp']['hal.budget'] == 40.0
    assert np.isfinite(summary['hal+si']['avg_acc_mean'])
    assert_refused(tmp_path, capsys, (
        ('hal', 'hal.beta=1', 'hal.beta=1: must be in [0, 1)'),
        ('hal', 'hal.anchor_steps=0.5', 'whole number of steps'),
        ('hal+gss', None, 'own objective')))
