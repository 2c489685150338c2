"""EWC: the vectorised Fisher against closed forms and explicit loops, and
the offline/online penalties against hand formulas."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcl import data as data_lib
from jcl import losses
from jcl.methods.ewc import (
    EWCState,
    OnlineEWCState,
    ewc,
    example_fisher,
    fisher_diagonal,
)
from jcl.models.classifier import mlp_classifier
from jcl.types import TaskCtx

D, C = 3, 4

# one compilation per (classify, samples, chunk), shared by the tests
fisher = jax.jit(fisher_diagonal, static_argnums=0,
                 static_argnames=('samples', 'chunk'))


def tiny_data():
    """Two tasks over a pool of 9 inputs; task 0 has 5 valid entries of 7
    (the 2 padding entries point at inputs that must not count)."""
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, (9, D)).astype(np.uint8)
    index = np.array([[0, 1, 2, 3, 4, 7, 8], [5, 6, 7, 8, 0, 0, 0]])
    return data_lib.TaskData(
        images=jnp.asarray(images), labels=jnp.zeros(9, jnp.int32),
        index=jnp.asarray(index, jnp.int32),
        count=jnp.array([5, 4], jnp.int32),
        origin=jnp.asarray(np.repeat([[0], [1]], 7, axis=1), jnp.int32),
        offset=jnp.zeros(2, jnp.int32), perm=None)


def table(scenario):
    return jnp.asarray(data_lib.active_table(scenario, [[0, 1], [2, 3]]))


def ctx_at(task_id, scenario='class', seed=0):
    return TaskCtx(jnp.int32(task_id), jax.random.PRNGKey(seed),
                   table(scenario))


def linear(params, x, task):
    del task  # unused
    p = params['classifier']
    return x @ p['w'] + p['b']


def linear_params(seed=1):
    kw, kb = jax.random.split(jax.random.PRNGKey(seed))
    return {'classifier': {'w': jax.random.normal(kw, (D, C)),
                           'b': 0.5 * jax.random.normal(kb, (C,))}}


def task_inputs(data, task_id):
    n = int(data.count[task_id])
    b = data_lib.gather(data, data.index[task_id, :n],
                        data.origin[task_id, :n])
    return np.asarray(b.x), np.asarray(b.task)


@pytest.mark.parametrize('task_id', [0, 1])
def test_fisher_matches_closed_form_for_softmax_regression(task_id):
    # logits = x W + b: d log p_c / d W[d, k] = x_d (1[c=k] - p_k), so
    # sum_c p_c (.)**2 = x_d**2 p_k (1 - p_k); inactive outputs have p = 0
    data, params = tiny_data(), linear_params()
    ctx = ctx_at(task_id)
    got = fisher(linear, params, data, ctx, chunk=2)
    x, _ = task_inputs(data, task_id)
    mask = np.asarray(ctx.active[task_id, task_id])
    logits = x @ np.asarray(params['classifier']['w']) + np.asarray(
        params['classifier']['b'])
    logits = np.where(mask, logits, -np.inf)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    v = p * (1 - p)
    want_w = (x[:, :, None] ** 2 * v[:, None, :]).mean(0)
    np.testing.assert_allclose(got['w'], want_w, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got['b'], v.mean(0), rtol=1e-5, atol=1e-7)
    assert np.all(np.asarray(got['b'])[~mask] == 0)


def loop_fisher(classify, params, data, ctx):
    """The slow oracle: a Python loop over examples and active classes."""
    t = int(ctx.task_id)
    x, task = task_inputs(data, t)

    @jax.jit
    def term(p, x1, task1, mask, c):
        def logp(q):
            z = classify({**params, 'classifier': q}, x1[None], task1[None])
            return jax.nn.log_softmax(losses.mask_logits(z[0], mask))[c]

        return jnp.exp(logp(p)), jax.grad(logp)(p)

    total = jax.tree.map(np.zeros_like, params['classifier'])
    for i in range(len(x)):
        mask = ctx.active[t, task[i]]
        for c in np.flatnonzero(np.asarray(mask)):
            prob, g = term(params['classifier'], x[i], task[i], mask, c)
            total = jax.tree.map(
                lambda a, b, w=prob: a + w * np.asarray(b) ** 2, total, g)
    return jax.tree.map(lambda a: a / len(x), total)


@pytest.mark.parametrize('scenario', ['task', 'class'])
def test_fisher_matches_explicit_loop_on_mlp(scenario):
    clf = mlp_classifier((4,), num_outputs=C, input_dim=D)
    params = {'classifier': clf.init(jax.random.PRNGKey(3))}
    data, ctx = tiny_data(), ctx_at(1, scenario)
    got = fisher(clf.apply, params, data, ctx, chunk=3)
    want = loop_fisher(clf.apply, params, data, ctx)
    chex.assert_trees_all_close(got, want, rtol=1e-4, atol=1e-7)
    assert float(jnp.abs(got['Dense_0']['Dense_0']['kernel']).sum()) > 0


def test_fisher_samples_uses_n_distinct_valid_examples():
    data, params = tiny_data(), linear_params()
    ctx = ctx_at(0)
    x, task = task_inputs(data, 0)
    each = jax.jit(jax.vmap(lambda xi, ti: example_fisher(
        linear, params, xi, ti, ctx.active[0, 0])))(x, task)
    full = fisher(linear, params, data, ctx, chunk=2)
    chex.assert_trees_all_close(full, jax.tree.map(lambda f: f.mean(0),
                                                   each), rtol=1e-5)
    # n >= count: all valid examples, never the padding
    chex.assert_trees_all_close(
        fisher(linear, params, data, ctx, samples=7, chunk=2), full,
        rtol=1e-5)
    pairs = [jax.tree.map(lambda f, i=i, j=j: (f[i] + f[j]) / 2, each)
             for i, j in itertools.combinations(range(len(x)), 2)]
    seen = set()
    for seed in range(4):
        got = fisher(linear, params, data, ctx_at(0, seed=seed), samples=2,
                     chunk=2)
        match = [k for k, f in enumerate(pairs) if np.allclose(
            f['w'], got['w'], rtol=1e-5) and np.allclose(
                f['b'], got['b'], rtol=1e-5)]
        assert len(match) == 1  # the mean of one pair of valid examples
        seen.add(match[0])
    assert len(seen) > 1  # the key draws the sample


def shifted(params, amount):
    return jax.tree.map(lambda p: p + amount * jnp.cos(jnp.arange(p.size)
                                                       .reshape(p.shape)
                                                       + amount), params)


def test_penalty_is_half_strength_weighted_distance_by_hand():
    m = ewc(linear, strength=3.0, online=True, gamma=0.5)
    theta = {'w': jnp.array([[1.0, 2.0]]), 'b': jnp.array([0.0])}
    state = OnlineEWCState(
        anchor={'w': jnp.array([[0.0, 1.0]]), 'b': jnp.array([2.0])},
        fisher={'w': jnp.array([[2.0, 4.0]]), 'b': jnp.array([1.0])})
    # 3 * 0.5 * 0.5 * (2*1 + 4*1 + 1*4) = 7.5
    got = m.loss({'classifier': theta}, state, None, None)['penalty']
    np.testing.assert_allclose(got, 7.5, rtol=1e-6)
    off = ewc(linear, strength=3.0, num_tasks=2)
    stacked = EWCState(
        anchor=jax.tree.map(lambda a: jnp.stack([a, 0 * a]), state.anchor),
        fisher=jax.tree.map(lambda f: jnp.stack([f, 2 * f]), state.fisher))
    # slot 0: 10, slot 1: 2 * (2*1 + 4*4 + 0) = 36; 3 * 0.5 * 46 = 69
    got = off.loss({'classifier': theta}, stacked, None, None)['penalty']
    np.testing.assert_allclose(got, 69.0, rtol=1e-6)


def test_offline_keeps_one_anchor_and_fisher_per_task():
    data, strength = tiny_data(), 7.0
    m = ewc(linear, strength=strength, num_tasks=2, chunk=2)
    p0, p1 = linear_params(1), linear_params(2)
    state = m.init(p0, jax.random.PRNGKey(0))
    probe = shifted(p0, 0.3)
    assert float(m.loss(probe, state, None, ctx_at(0))['penalty']) == 0.0
    consolidate = jax.jit(m.consolidate)
    state = consolidate(state, p0, data, ctx_at(0))
    state = consolidate(state, p1, data, ctx_at(1))
    f0 = fisher(linear, p0, data, ctx_at(0), chunk=2)
    f1 = fisher(linear, p1, data, ctx_at(1), chunk=2)
    chex.assert_trees_all_close(
        state.anchor, jax.tree.map(lambda a, b: jnp.stack([a, b]),
                                   p0['classifier'], p1['classifier']))
    chex.assert_trees_all_close(
        state.fisher, jax.tree.map(lambda a, b: jnp.stack([a, b]), f0, f1),
        rtol=1e-5)
    th = probe['classifier']
    d0 = jax.tree.map(jnp.subtract, th, p0['classifier'])
    d1 = jax.tree.map(jnp.subtract, th, p1['classifier'])
    want = strength / 2 * sum(
        float(jnp.sum(f0[k] * d0[k] ** 2 + f1[k] * d1[k] ** 2))
        for k in th)
    got = m.loss(probe, state, None, ctx_at(1))['penalty']
    np.testing.assert_allclose(got, want, rtol=1e-5)
    grad = jax.grad(lambda p: m.loss(p, state, None, None)['penalty'])(
        probe)['classifier']
    want_grad = {k: strength * (f0[k] * d0[k] + f1[k] * d1[k]) for k in th}
    chex.assert_trees_all_close(grad, want_grad, rtol=1e-5, atol=1e-7)


def test_online_fisher_decays_with_gamma_and_penalty_has_extra_gamma():
    data, strength, gamma = tiny_data(), 2.0, 0.25
    m = ewc(linear, strength=strength, online=True, gamma=gamma, chunk=2)
    p0, p1 = linear_params(1), linear_params(2)
    state = m.init(p0, jax.random.PRNGKey(0))
    consolidate = jax.jit(m.consolidate)
    state = consolidate(state, p0, data, ctx_at(0))
    state = consolidate(state, p1, data, ctx_at(1))
    f0 = fisher(linear, p0, data, ctx_at(0), chunk=2)
    f1 = fisher(linear, p1, data, ctx_at(1), chunk=2)
    f = jax.tree.map(lambda a, b: gamma * a + b, f0, f1)
    chex.assert_trees_all_close(state.fisher, f, rtol=1e-5)
    chex.assert_trees_all_close(state.anchor, p1['classifier'])
    probe = shifted(p1, 0.2)
    d = jax.tree.map(jnp.subtract, probe['classifier'], p1['classifier'])
    want = strength / 2 * gamma * sum(float(jnp.sum(f[k] * d[k] ** 2))
                                      for k in d)
    got = m.loss(probe, state, None, None)['penalty']
    np.testing.assert_allclose(got, want, rtol=1e-5)
    grad = jax.grad(lambda p: m.loss(p, state, None, None)['penalty'])(
        probe)['classifier']
    chex.assert_trees_all_close(
        grad, {k: strength * gamma * f[k] * d[k] for k in d}, rtol=1e-5)


def test_hyperparameters_may_be_vmapped_tracers():
    data, p0 = tiny_data(), linear_params(1)
    probe = shifted(p0, 0.1)

    def run(strength, gamma):
        m = ewc(linear, strength=strength, online=True, gamma=gamma, chunk=2)
        state = m.init(p0, jax.random.PRNGKey(0))
        state = m.consolidate(state, p0, data, ctx_at(0))
        return m.loss(probe, state, None, None)['penalty']

    got = jax.jit(jax.vmap(run))(jnp.array([1.0, 2.0]), jnp.array([1., .5]))
    one = run(1.0, 1.0)
    np.testing.assert_allclose(got, [one, one], rtol=1e-5)
    assert float(one) > 0


def test_offline_needs_num_tasks():
    with pytest.raises(ValueError, match='num_tasks'):
        ewc(linear, strength=1.0)
