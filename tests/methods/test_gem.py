"""Oracles of GEM: its exact QP solver, its projection, its memory and
its gradient stage (jit, vmap over seeds), and the command line."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import nnls
from tiny_runs import assert_refused

from jcl import cli
from jcl.core import losses
from jcl.core.model import make_model
from jcl.core.records import Step, TaskCtx, TaskEnd
from jcl.core.taskdata import to_device
from jcl.methods import buffers
from jcl.methods.cone_projection import nonneg_qp, project_to_cone
from jcl.methods.episodic_memory import gem
from jcl.tasks import protocols

D, C = 3, 4


def qp_by_nnls(P, q):
    """``argmin 1/2 u'Pu + q'u, u >= 0`` as a least-squares problem:
    ``P = L L'``, ``|L'u + L^-1 q|^2`` (scipy's active-set NNLS)."""
    L = np.linalg.cholesky(P)
    return nnls(L.T, -np.linalg.solve(L, q))[0]


def test_qp_hand_solved_cases():
    # unconstrained optimum (1, -1): u_1 hits its bound, u_0 = 1
    u = nonneg_qp(jnp.diag(jnp.array([2.0, 1.0])), jnp.array([-2.0, 1.0]),
                  jnp.ones(2, bool))
    np.testing.assert_allclose(u, [1.0, 0.0], atol=1e-6)
    # coupled: unconstrained (1, -1) again; with u_1 = 0, 2 u_0 = 1, and
    # the gradient of u_1 there is 0.5 + 1 > 0
    P = jnp.array([[2.0, 1.0], [1.0, 2.0]])
    np.testing.assert_allclose(
        nonneg_qp(P, jnp.array([-1.0, 1.0]), jnp.ones(2, bool)), [0.5, 0.0],
        atol=1e-6)
    # interior: P^-1 (1, 1) = (1/3, 1/3)
    np.testing.assert_allclose(
        nonneg_qp(P, jnp.array([-1.0, -1.0]), jnp.ones(2, bool)),
        [1 / 3, 1 / 3], atol=1e-6)
    # an inactive variable stays 0 whatever its term
    np.testing.assert_allclose(
        nonneg_qp(P, jnp.array([-1.0, -5.0]), jnp.array([True, False])),
        [0.5, 0.0], atol=1e-6)


@pytest.mark.parametrize('k', [1, 2, 3, 4])
def test_qp_matches_scipy_on_random_problems(k):
    rng = np.random.RandomState(k)
    solve = jax.jit(nonneg_qp)
    for _ in range(20):
        A = rng.randn(k, 6)
        P = A @ A.T + 1e-2 * np.eye(k)
        q = rng.randn(k) * 3
        got = np.asarray(solve(jnp.asarray(P, jnp.float32),
                               jnp.asarray(q, jnp.float32),
                               jnp.ones(k, bool)))
        want = qp_by_nnls(P, q)
        np.testing.assert_allclose(got, want, atol=2e-4, rtol=2e-3)


def test_projection_with_one_memory_in_closed_form():
    """k = 1: v = max(margin, -(m.g) / (|m|^2 + eps)) when m.g < 0."""
    g, m = np.array([1.0, -2.0]), np.array([0.0, 1.0])
    for margin in (0.0, 0.5, 5.0):
        v = project_to_cone(jnp.array([g @ m]), jnp.array([[m @ m]]),
                            jnp.ones(1, bool), margin)
        want = max(margin, -(g @ m) / (m @ m + 1e-3))
        np.testing.assert_allclose(v, [want], rtol=1e-6)
    # no violated constraint: g is kept (v = 0), whatever the margin
    v = project_to_cone(jnp.array([1.0]), jnp.array([[1.0]]),
                        jnp.ones(1, bool), 0.5)
    assert float(v[0]) == 0.0


def linear_model():
    def apply(p, s, x, task, train=False):
        return {'logits': x @ p['w'] + p['b'], 'features': x}, s
    return make_model(init=None, apply=apply)


PARAMS = {'w': jnp.asarray(np.random.RandomState(0).randn(D, C),
                           jnp.float32),
          'b': jnp.asarray([0.1, -0.2, 0.3, 0.0], jnp.float32)}


def scale(x):
    return x.astype(jnp.float32) / 10.0


def memory(per_task=2, num_tasks=3):
    """A memory with every block full: task j holds per_task examples."""
    rng = np.random.RandomState(1)
    n = per_task * num_tasks
    return buffers.empty(n, (D,), jnp.uint8)._replace(
        x=jnp.asarray(rng.randint(0, 10, (n, D)), jnp.uint8),
        y=jnp.asarray(rng.randint(0, C, n)),
        task=jnp.repeat(jnp.arange(num_tasks), per_task),
        valid=jnp.ones(n, bool))


def ctx(t):
    active = protocols.active_table('class', [[0, 1], [2, 3], [0, 1]])
    return TaskCtx(jnp.int32(t), jax.random.PRNGKey(7), jnp.asarray(active))


def gem_by_hand(buf, grads, t, margin, per_task=2):
    """The reference's steps in numpy: each earlier task's memory
    gradient, the dual QP (scipy), g + M'v if any dot product < 0."""
    flat = np.concatenate([np.ravel(grads['w']), np.ravel(grads['b'])])
    rows = []
    for j in range(t):
        sl = slice(j * per_task, (j + 1) * per_task)

        def loss(p):
            z = scale(buf.x[sl]) @ p['w'] + p['b']
            return jnp.mean(losses.cross_entropy(
                z, buf.y[sl], ctx(t).mask(buf.task[sl])))
        gj = jax.grad(loss)(PARAMS)
        rows.append(np.concatenate([np.ravel(gj['w']), np.ravel(gj['b'])]))
    M = np.asarray(rows, np.float64).reshape(t, flat.size)
    if not (M @ flat < 0).any():
        return flat
    P = M @ M.T + 1e-3 * np.eye(t)
    q = M @ flat
    u = qp_by_nnls(P, q + P @ np.full(t, margin))
    return flat + M.T @ (u + margin)


def flat(g):
    return np.concatenate([np.ravel(g['w']), np.ravel(g['b'])])


def step_of(grads):
    return Step(PARAMS, PARAMS, grads, {}, None, None, {}, {})


@pytest.mark.parametrize('t', [0, 1, 2])
def test_gem_stage_matches_the_reference_steps(t):
    m = gem(linear_model(), prepare=scale, input_shape=(D,), num_tasks=3,
            budget=6, gamma=0.5)
    buf = memory()
    projected = 0
    for seed in range(6):
        grads = jax.tree.map(lambda a, s=seed: 3 * jax.random.normal(
            jax.random.PRNGKey(s), a.shape), PARAMS)
        got = flat(m.grads(buf, step_of(grads), ctx(t)))
        np.testing.assert_allclose(got, gem_by_hand(buf, grads, t, 0.5),
                                   rtol=2e-4, atol=2e-5)
        projected += not np.allclose(got, flat(grads))
    assert (projected > 0) == (t > 0)         # the cases test a projection


def test_gem_stage_jit_and_vmap_over_seeds():
    m = gem(linear_model(), prepare=scale, input_shape=(D,), num_tasks=3,
            budget=6, gamma=0.5)
    buf = memory()
    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    grads = jax.vmap(lambda k: jax.tree.map(
        lambda a: 3 * jax.random.normal(k, a.shape), PARAMS))(keys)
    bufs = jax.tree.map(lambda a: jnp.stack([a] * 4), buf)
    c = ctx(2)
    loop = [m.grads(buf, step_of(jax.tree.map(lambda a, i=i: a[i], grads)),
                    c) for i in range(4)]
    stage = jax.jit(lambda b, g: m.grads(b, step_of(g), c))
    mapped = jax.jit(jax.vmap(lambda b, g: m.grads(b, step_of(g), c)))(
        bufs, grads)
    for i in range(4):
        one = jax.tree.map(lambda a, i=i: a[i], grads)
        for k in PARAMS:
            np.testing.assert_allclose(stage(buf, one)[k], loop[i][k],
                                       rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(mapped[k][i], loop[i][k], rtol=1e-5,
                                       atol=1e-6)


def test_gem_stores_budget_over_tasks_at_task_end(arrays):
    proto = protocols.class_split('synthetic', arrays, 'class')
    data = to_device(proto.train)
    m = gem(linear_model(), prepare=scale, input_shape=(784,),
            num_tasks=5, budget=23, gamma=0.5)
    buf = m.init(None, None)
    assert buf.x.shape == (20, 784)            # 23 // 5 = 4 per task
    for t in (0, 1):
        buf = m.consolidate(buf, TaskEnd(PARAMS, {}, data, scale),
                            TaskCtx(jnp.int32(t), jax.random.PRNGKey(t),
                                    jnp.asarray(proto.active)))
    assert buf.valid.tolist() == [True] * 8 + [False] * 12
    assert buf.task[:8].tolist() == [0] * 4 + [1] * 4
    assert set(np.asarray(buf.y[:4]) // 2) == {0}    # task 0: classes 0, 1
    assert set(np.asarray(buf.y[4:8]) // 2) == {1}


def test_gem_runs_and_refuses_bad_values(tmp_path, capsys):
    out = tmp_path / 'gem'
    code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                     'class', '--method', 'gem+ewc', '--iters', '4',
                     '--hidden', '16', '--set', 'gem.budget=50',
                     '--out', str(out)])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['gem+ewc']['hp']['gem.budget'] == 50.0
    assert_refused(tmp_path, capsys, (
        ('gem+agem', None, 'both a gradient projection'),
        ('gem', 'gem.gamma=-1', 'must be >= 0'),
        ('gem', 'gem.budget=3', 'at least one example per task')))
