"""Oracles of FROMP: the Gauss-Newton diagonal, the kernel and its
inverse, the memorable points, the functional prior's value and its
gradient against the reference's update, the clipping, jit vs no-jit,
vmap over seeds vs a loop, refusals and a command-line run."""

import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_runs import assert_rows_equal_loop

from jcl import cli
from jcl.core import taskdata as data_lib
from jcl.core.errors import ConfigError
from jcl.core.method import member_key
from jcl.core.records import Forward, Snapshot, Step, TaskCtx, TaskEnd
from jcl.methods import catalog, function_space
from jcl.methods.functional_regularisation import fromp
from jcl.models import mlp_classifier
from jcl.tasks import protocols
from jcl.training import learner as learner_lib

D, C = 6, 4
CLF = mlp_classifier((5,), num_outputs=C, input_dim=D)
PARAMS, STATE = CLF.init(jax.random.PRNGKey(0))
SNAP = Snapshot(PARAMS, STATE)


def tiny_protocol(scenario='class'):
    from conftest import synthetic_arrays
    arrays = synthetic_arrays(80, 20, classes=C)
    arrays = {k: v[:, :2, :3].reshape(len(v), D) if k.endswith('_x') else v
              for k, v in arrays.items()}
    return protocols.class_split('s', arrays, scenario)


def scale(x):
    return x.astype(jnp.float32) / 255.0


def flat(tree):
    return np.concatenate([np.ravel(a) for a in jax.tree.leaves(tree)])


def jacobian(fn, params):
    """``[K, P]`` Jacobian of ``fn(params) -> [K]``."""
    jac = jax.jacrev(fn)(params)
    return np.concatenate([np.asarray(a).reshape(a.shape[0], -1)
                           for a in jax.tree.leaves(jac)], 1)


def probs_of(params, x, mask):
    z, _ = CLF.apply(params, STATE, x[None], jnp.zeros(1, jnp.int32))
    return function_space.probabilities(z['logits'], mask[None])[0]


def test_ggn_diagonal_by_brute_force():
    """``sum_x diag(J' (diag(s) - s s') J)`` over the task, with the
    Jacobian of the logits over the active outputs (dense and generic
    paths)."""
    proto = tiny_protocol()
    data = data_lib.to_device(proto.train)
    ctx = TaskCtx(jnp.int32(1), jax.random.PRNGKey(0),
                  jnp.asarray(proto.active))
    end = TaskEnd(PARAMS, STATE, data, scale)
    want = 0.0
    mask = np.asarray(proto.active)[1, 1]
    for e in range(int(data.count[1])):
        x = scale(data.images[data.index[1, e]])
        z = CLF.apply(PARAMS, STATE, x[None], jnp.zeros(1, jnp.int32))[0]
        s = np.asarray(function_space.probabilities(z['logits'],
                                                     mask[None]))[0]
        J = jacobian(lambda p: CLF.apply(p, STATE, x[None], jnp.zeros(
            1, jnp.int32))[0]['logits'][0], PARAMS) * mask[:, None]
        H = np.diag(s) - np.outer(s, s)
        want = want + np.einsum('dp,de,ep->p', J, H, J)
    for dense in (True, False):
        got = flat(function_space.ggn_diagonal(CLF, end, ctx, dense=dense))
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-5)


def test_kernel_and_inverse_by_brute_force():
    """``G diag(cov) G' + 1e-6 I`` for softmax output 2 of 5 points in
    blocks of 2 (padding included), and its inverse."""
    x = jax.random.uniform(jax.random.PRNGKey(1), (5, D))
    mask = jnp.ones((5, C), bool).at[:, 3].set(False)
    cov = jax.tree.map(lambda a: jnp.full_like(a, 0.5) + jnp.abs(a), PARAMS)
    got = function_space.function_kernel(
        CLF, SNAP, x, jnp.zeros(5, jnp.int32), mask, cov, output=2,
        chunk=2)
    G = np.stack([jacobian(lambda p: probs_of(p, xi, mask[0])[2:3],
                           PARAMS)[0] for xi in x])
    want = G @ np.diag(flat(cov)) @ G.T + 1e-6 * np.eye(5)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)
    inv = function_space.kernel_inverse(jnp.asarray(want, jnp.float32))
    np.testing.assert_allclose(np.asarray(inv) @ want, np.eye(5), atol=2e-3)


def make(**kw):
    args = dict(tau=3.0, per_class=2, num_tasks=2, classes_per_task=2,
                num_outputs=C, batch_size=3, prepare=scale,
                input_shape=(D,))
    return fromp(CLF, **{**args, **kw})


def consolidated(m, proto, tasks=1):
    data = data_lib.to_device(proto.train)
    state = m.init(SNAP, TaskCtx(jnp.int32(0), None, None))
    for t in range(tasks):
        ctx = TaskCtx(jnp.int32(t), jax.random.PRNGKey(t),
                      jnp.asarray(proto.active))
        state = m.consolidate(state, TaskEnd(PARAMS, STATE, data, scale),
                              ctx)
    return state, data


def test_memorable_points_kernels_and_outputs():
    """After task 0: each class keeps its examples of largest
    ``sum s (1 - s)``; the kernels are those of ``cov = 1 / (GGN +
    prior)`` at the points, scored with the next task's active outputs."""
    proto = tiny_protocol()
    m = make()
    state, data = consolidated(m, proto)
    active = np.asarray(proto.active)
    entries = np.arange(int(data.count[0]))
    raw = np.asarray(data.images)[np.asarray(data.index)[0, entries]]
    y = np.asarray(data.labels)[np.asarray(data.index)[0, entries]]
    z = CLF.apply(PARAMS, STATE, scale(raw), jnp.zeros(len(raw), jnp.int32))
    lam = np.asarray(function_space.memorability(
        z[0]['logits'], jnp.asarray(active[0, 0])[None]))
    for r in range(2):
        best = entries[y == r][np.argsort(-lam[y == r])[:2]]
        np.testing.assert_array_equal(np.asarray(state.buffer.x)[2 * r:
                                                                 2 * r + 2],
                                      raw[best])
    ctx = TaskCtx(jnp.int32(0), None, jnp.asarray(proto.active))
    ggn = function_space.ggn_diagonal(
        CLF, TaskEnd(PARAMS, STATE, data, scale), ctx)
    chex.assert_trees_all_close(state.ggn, ggn)
    cov = jax.tree.map(lambda f: 1.0 / (f + 1e-3), ggn)
    x = scale(state.buffer.x[:4])
    mask = jnp.broadcast_to(jnp.asarray(active[1, 0]), (4, C))
    for k in range(C):
        K = function_space.function_kernel(CLF, SNAP, x, jnp.zeros(
            4, jnp.int32), mask, cov, output=k)
        np.testing.assert_allclose(
            np.asarray(state.kernel_inv[0, k]) @ np.asarray(K), np.eye(4),
            atol=5e-2)
    s = np.stack([np.asarray(probs_of(PARAMS, xi, mask[0])) for xi in x])
    np.testing.assert_allclose(state.outputs[0], s, rtol=1e-5)
    assert np.asarray(state.kernel_inv[1]).max() == 0     # no task 1 yet


def test_prior_term_and_its_gradient_are_the_references():
    """Task 2 of 3 (two earlier tasks, B = 3: ceil(3/2) = 2 points of
    each): ``tau/2 sum_k d_k' [K_k^-1]_S d_k``, whose gradient is the
    reference's ``tau sum_k J_k' [K_k^-1]_S d_k``."""
    m = make(num_tasks=3)
    rng = np.random.RandomState(0)
    state = m.init(SNAP, TaskCtx(jnp.int32(0), None, None))
    a = rng.randn(3, C, 4, 4)
    inv = jnp.asarray(a @ a.transpose(0, 1, 3, 2), jnp.float32)
    state = state._replace(
        buffer=state.buffer._replace(
            x=jnp.asarray(rng.randint(0, 255, (12, D)), jnp.uint8),
            valid=jnp.ones(12, bool)),
        kernel_inv=inv,
        outputs=jnp.asarray(rng.dirichlet(np.ones(C), (3, 4)), jnp.float32))
    active = jnp.ones((3, 3, C), bool)
    ctx = TaskCtx(jnp.int32(2), jax.random.PRNGKey(4), active)
    params = jax.tree.map(lambda p: p + 0.1, PARAMS)

    def term(p):
        return m.loss(state, Forward(p, STATE, None, {}, {}), ctx)[0][
            'fromp']

    u = jax.random.uniform(member_key(ctx, 'fromp'), (3, 4))
    order = np.argsort(np.asarray(u), axis=1)
    value, grad = 0.0, 0.0
    for i in range(2):                  # the two earlier tasks
        pts = order[i, :2]
        x = scale(state.buffer.x[i * 4 + pts])
        for k in range(C):
            def fk(p):
                return jnp.stack([probs_of(p, xi, jnp.ones(C, bool))[k]
                                  for xi in x])
            d = np.asarray(fk(params)) - np.asarray(
                state.outputs[i, pts, k])
            A = np.asarray(inv[i, k])[np.ix_(pts, pts)]
            value += 0.5 * 3.0 * d @ A @ d
            grad = grad + 3.0 * jacobian(fk, params).T @ (A @ d)
    np.testing.assert_allclose(float(term(params)), value, rtol=1e-4)
    np.testing.assert_allclose(flat(jax.grad(term)(params)), grad,
                               rtol=1e-3, atol=1e-5)
    first = TaskCtx(jnp.int32(0), jax.random.PRNGKey(4), active)
    assert float(m.loss(state, Forward(params, STATE, None, {}, {}),
                        first)[0]['fromp']) == 0.0


def test_gradient_norm_is_clipped():
    m = make(clip=1.0)
    g = {'a': jnp.array([3.0, 4.0])}
    step = Step(None, None, g, None, None, None, None, None)
    out = m.grads(None, step, None)
    np.testing.assert_allclose(out['a'], [0.6, 0.8], rtol=1e-6)
    small = step._replace(grads={'a': jnp.array([0.3, 0.4])})
    np.testing.assert_allclose(m.grads(None, small, None)['a'], [0.3, 0.4])
    off = make(clip=0.0).grads(None, step, None)
    np.testing.assert_allclose(off['a'], [3.0, 4.0])


def test_jit_equals_no_jit():
    proto = tiny_protocol()
    m = make()

    def run(params):
        state, data = consolidated(m, proto, tasks=1)
        ctx = TaskCtx(jnp.int32(1), jax.random.PRNGKey(2),
                      jnp.asarray(proto.active))
        return state.kernel_inv, jax.grad(lambda p: m.loss(
            state, Forward(p, STATE, None, {}, {}), ctx)[0]['fromp'])(
                jax.tree.map(lambda a: a * 1.1, params))

    with jax.disable_jit():
        eager = run(PARAMS)
    chex.assert_trees_all_close(eager, jax.jit(run)(PARAMS), rtol=2e-3,
                                atol=1e-3)


def test_vmap_over_seeds_equals_loop():
    proto = tiny_protocol()

    def model(hp):
        return mlp_classifier((8,), num_outputs=C, input_dim=D)

    learner = learner_lib.Learner(
        model, lambda hp, mdl: fromp(
            mdl, tau=hp['tau'], per_class=2, num_tasks=2,
            classes_per_task=2, num_outputs=C, batch_size=4,
            prepare=scale, input_shape=(D,)),
        prepare=scale, num_steps=4, batch_size=4)
    hp = {'lr': jnp.full((2,), 1e-2), 'tau': jnp.array([1.0, 10.0])}
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    assert_rows_equal_loop(learner, proto, hp, keys)

def test_defaults_and_bad_values():
    hp = catalog.default_hparams(['fromp'], lr=1e-3, protocol='split-mnist',
                                 scenario='class')
    assert hp['fromp.tau'] == 1000.0 and hp['fromp.per_class'] == 100.0
    assert hp['fromp.prior_prec'] == 1e-3 and hp['fromp.clip'] == 1.0
    assert catalog.default_hparams(['fromp'], lr=1e-3, protocol='split-mnist',
                                   scenario='task')['fromp.tau'] == 0.01
    assert catalog.default_hparams(['fromp'], lr=1e-3,
                                   protocol='permuted-mnist',
                                   scenario='domain')['fromp.per_class'] == 10
    for name, v in (('tau', -1), ('per_class', 0), ('prior_prec', 0),
                    ('clip', -1)):
        with pytest.raises(ConfigError, match=f'fromp.{name}'):
            catalog.check_hparams(['fromp'], {f'fromp.{name}': v})


def test_runs_from_the_command_line(tmp_path, capsys):
    out = tmp_path / 'f'
    code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                     'task', '--method', 'fromp', '--iters', '3',
                     '--hidden', '8', '--set', 'fromp.per_class=3',
                     '--out', str(out)])
    assert code == 0, capsys.readouterr().err
    with np.load(out / 'results.npz') as f:
        term = f['fromp/loss/fromp/fromp']
    assert (term[:, 0] == 0).all() and (term[:, 1:] > 0).any()
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['fromp']['hp']['fromp.tau'] == 0.01
