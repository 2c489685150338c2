"""EWC: the vectorised Fisher against closed forms and explicit loops, the
dense fast path against the generic path, and the offline/online
penalties against hand formulas."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcl import data as data_lib
from jcl import losses
from jcl.methods.ewc import (
    EWCState,
    OnlineEWCState,
    add_quadratic,
    dense_taps,
    ewc,
    example_fisher,
    fisher_diagonal,
)
from jcl.models.classifier import (
    mlp_classifier,
    separate_classifiers,
    xdg_gates,
)
from jcl.types import TaskCtx

D, C = 3, 4

# one compilation per (classify, select, samples, chunk, dense), shared by
# the tests
fisher = jax.jit(fisher_diagonal, static_argnums=0,
                 static_argnames=('select', 'samples', 'chunk', 'dense'))


def to_np(tree):
    return jax.tree.map(np.asarray, tree)


def assert_close(got, want, **kw):
    jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, **kw),
                 to_np(got), to_np(want))


def tiny_data():
    """Two tasks over a pool of 9 inputs; task 0 has 5 valid entries of 7
    (the 2 padding entries point at inputs that must not count)."""
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, (9, D)).astype(np.uint8)
    index = np.array([[0, 1, 2, 3, 4, 7, 8], [5, 6, 7, 8, 0, 0, 0]])
    arrays = data_lib.TaskData(
        images=images, labels=np.zeros(9, np.int32),
        index=index.astype(np.int32), count=np.array([5, 4], np.int32),
        origin=np.repeat([[0], [1]], 7, axis=1).astype(np.int32),
        offset=np.zeros(2, np.int32), perm=None)
    return data_lib.to_device(arrays)


TABLES = {s: jnp.asarray(data_lib.active_table(s, [[0, 1], [2, 3]]))
          for s in ('task', 'class')}


def ctx_at(task_id, scenario='class', seed=0):
    return TaskCtx(jnp.asarray(task_id, jnp.int32),
                   jax.random.PRNGKey(seed), TABLES[scenario])


def linear(params, x, task):
    del task  # unused
    p = params['classifier']
    return x @ p['w'] + p['b']


def linear_params(seed=1):
    rng = np.random.RandomState(seed)
    return {'classifier': {
        'w': jnp.asarray(rng.randn(D, C), jnp.float32),
        'b': jnp.asarray(0.5 * rng.randn(C), jnp.float32)}}


def shifted(params, amount):
    """``params`` moved by a fixed, uneven amount per entry."""
    return jax.tree.map(lambda p: jnp.asarray(
        np.asarray(p) + amount * np.cos(np.arange(p.size) + amount)
        .reshape(p.shape), jnp.float32), params)


def task_inputs(data, task_id):
    """The valid inputs and tasks of ``task_id`` as numpy arrays."""
    n = int(data.count[task_id])
    index = np.asarray(data.index)[task_id, :n]
    return (np.asarray(data.images)[index] / 255.0,
            np.asarray(data.origin)[task_id, :n])


@pytest.mark.parametrize('task_id', [0, 1])
def test_fisher_matches_closed_form_for_softmax_regression(task_id):
    # logits = x W + b: d log p_c / d W[d, k] = x_d (1[c=k] - p_k), so
    # sum_c p_c (.)**2 = x_d**2 p_k (1 - p_k); inactive outputs have p = 0
    data, params = tiny_data(), linear_params()
    ctx = ctx_at(task_id)
    got = to_np(fisher(linear, params, data, ctx, chunk=2))
    x, _ = task_inputs(data, task_id)
    mask = np.asarray(ctx.active[task_id, task_id])
    p = to_np(params['classifier'])
    logits = np.where(mask, x @ p['w'] + p['b'], -np.inf)
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    v = prob * (1 - prob)
    want_w = (x[:, :, None] ** 2 * v[:, None, :]).mean(0)
    np.testing.assert_allclose(got['w'], want_w, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got['b'], v.mean(0), rtol=1e-5, atol=1e-7)
    assert np.all(got['b'][~mask] == 0) and np.all(got['b'][mask] > 0)


def mlp(params, x, task):
    """A 3-4-4 tanh network with a per-task output bias (so ``task``
    matters, like XdG gates)."""
    p = params['classifier']
    h = jnp.tanh(x @ p['w1'] + p['b1'])
    return h @ p['w2'] + p['b2'] + params['frozen'][task]


def mlp_params():
    rng = np.random.RandomState(3)
    shapes = {'w1': (D, 4), 'b1': (4,), 'w2': (4, C), 'b2': (C,)}
    return {'classifier': {k: jnp.asarray(rng.randn(*v), jnp.float32)
                           for k, v in shapes.items()},
            'frozen': jnp.asarray(rng.randn(2, C), jnp.float32)}


@functools.partial(jax.jit, static_argnums=0)
def grad_term(classify, params, x1, task1, mask, c):
    """``p(c|x)`` and ``grad log p(c|x)`` of one example and class."""
    def logp(q):
        z = classify({**params, 'classifier': q}, x1[None], task1[None])
        return jax.nn.log_softmax(losses.mask_logits(z[0], mask))[c]

    return jnp.exp(logp(params['classifier'])), jax.grad(logp)(
        params['classifier'])


def loop_fisher(params, data, ctx, classify=mlp):
    """The slow oracle: a Python loop over examples and active classes."""
    t = int(ctx.task_id)
    x, task = task_inputs(data, t)
    active = np.asarray(ctx.active)
    total = jax.tree.map(np.zeros_like, to_np(params['classifier']))
    for i in range(len(x)):
        mask = active[t, task[i]]
        for c in np.flatnonzero(mask):
            prob, g = to_np(grad_term(classify, params, x[i], task[i], mask,
                                      c))
            total = jax.tree.map(lambda a, b, w=prob: a + w * b ** 2,
                                 total, g)
    return jax.tree.map(lambda a: a / len(x), total)


def test_fisher_matches_explicit_loop_on_mlp():
    params, data = mlp_params(), tiny_data()
    for scenario in ('task', 'class'):  # own head vs all classes so far
        ctx = ctx_at(1, scenario)
        got = fisher(mlp, params, data, ctx, chunk=3)
        assert_close(got, loop_fisher(params, data, ctx), rtol=1e-4,
                     atol=1e-7)
        assert np.all((np.asarray(got['b2']) > 0)
                      == np.asarray(ctx.active[1, 1]))


def test_fisher_samples_uses_n_distinct_valid_examples():
    data, params = tiny_data(), linear_params()
    ctx = ctx_at(0)
    x, task = task_inputs(data, 0)
    each = to_np(jax.jit(jax.vmap(lambda xi, ti: example_fisher(
        linear, params, xi, ti, ctx.active[0, 0])))(x, task))
    full = fisher(linear, params, data, ctx, chunk=2)
    assert_close(full, jax.tree.map(lambda f: f.mean(0), each), rtol=1e-5)
    # n >= count: all valid examples, never the padding
    assert_close(fisher(linear, params, data, ctx, samples=7, chunk=2),
                 full, rtol=1e-5)
    pairs = [jax.tree.map(lambda f, i=i, j=j: (f[i] + f[j]) / 2, each)
             for i, j in itertools.combinations(range(len(x)), 2)]
    seen = set()
    for seed in range(4):
        got = to_np(fisher(linear, params, data, ctx_at(0, seed=seed),
                           samples=2, chunk=2))
        match = [k for k, f in enumerate(pairs)
                 if np.allclose(f['w'], got['w'], rtol=1e-5)
                 and np.allclose(f['b'], got['b'], rtol=1e-5)]
        assert len(match) == 1  # the mean of one pair of valid examples
        seen.add(match[0])
    assert len(seen) > 1  # the key draws the sample


HIDDEN = (5, 4)
CLF = mlp_classifier(HIDDEN, num_outputs=C, input_dim=D)


def dense_params(gated):
    """``CLF``'s parameters (scaled up, so the softmax is far from flat),
    with XdG gates (2 of 5 and 2 of 4 units off per task) or none."""
    params = {'classifier': jax.tree.map(
        lambda p: 3.0 * p, CLF.init(jax.random.PRNGKey(4)))}
    if gated:
        params['gates'] = xdg_gates(jax.random.PRNGKey(5), HIDDEN,
                                    num_tasks=2, proportion=0.4)
    return params


def test_dense_taps_are_the_network_layers_and_inputs():
    params, data = dense_params(gated=True), tiny_data()
    assert jax.tree.map(np.shape, params['classifier']) == {
        'Dense_0': {'kernel': (D, 5), 'bias': (5,)},
        'Dense_1': {'kernel': (5, 4), 'bias': (4,)},
        'Dense_2': {'kernel': (4, C), 'bias': (C,)}}
    x, task = task_inputs(data, 1)
    zeros = {name: {'pre': jnp.zeros((len(x), layer['bias'].shape[0])),
                    'out': jnp.zeros((len(x), layer['bias'].shape[0]))}
             for name, layer in params['classifier'].items()}
    logits, inputs = CLF.apply.dense_taps(params, x, task, zeros)
    assert_close(logits, CLF.apply(params, x, task), rtol=1e-6)
    # by hand, with the task's gates on x @ W (not on the bias)
    p = to_np(params['classifier'])
    g = [np.asarray(gate)[task] for gate in params['gates']]
    h1 = np.maximum((x @ p['Dense_0']['kernel']) * g[0]
                    + p['Dense_0']['bias'], 0)
    h2 = np.maximum((h1 @ p['Dense_1']['kernel']) * g[1]
                    + p['Dense_1']['bias'], 0)
    assert_close(inputs, {'Dense_0': x, 'Dense_1': h1, 'Dense_2': h2},
                 rtol=1e-5, atol=1e-6)
    assert_close(logits, h2 @ p['Dense_2']['kernel'] + p['Dense_2']['bias'],
                 rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('gated', [False, True])
@pytest.mark.parametrize('scenario', ['task', 'class'])
def test_dense_fisher_equals_generic_and_explicit_loop(scenario, gated):
    params, data = dense_params(gated), tiny_data()
    assert dense_taps(CLF.apply, params) is CLF.apply.dense_taps
    for task_id in (0, 1):  # 5 of 7 and 4 of 7 valid entries
        ctx = ctx_at(task_id, scenario)
        want = loop_fisher(params, data, ctx, CLF.apply)
        generic = fisher(CLF.apply, params, data, ctx, chunk=3, dense=False)
        assert_close(generic, want, rtol=1e-4, atol=1e-7)
        # chunks of 2 (padded 7 -> 8), 3 (7 -> 9) and the default (512)
        for chunk in (2, 3, None):
            got = fisher(CLF.apply, params, data, ctx, chunk=chunk)
            assert_close(got, want, rtol=1e-4, atol=1e-7)
            assert_close(got, generic, rtol=1e-4, atol=1e-7)
        got = to_np(got)
        assert np.all((got['Dense_2']['bias'] > 0)
                      == np.asarray(ctx.active[task_id, task_id]))
        if gated:  # the task's gated units: no gradient into their weights
            for layer, gate in enumerate(params['gates']):
                off = np.asarray(gate[task_id]) == 0
                kernel = got[f'Dense_{layer}']['kernel']
                assert np.all(kernel[:, off] == 0)
                assert np.any(kernel[:, ~off] > 0)


@pytest.mark.parametrize('scenario', ['task', 'class'])
def test_dense_fisher_samples_draws_the_generic_paths_examples(scenario):
    params, data = dense_params(gated=True), tiny_data()
    for seed, samples in itertools.product(range(3), (2, 3, 7)):
        ctx = ctx_at(0, scenario, seed)
        got = fisher(CLF.apply, params, data, ctx, samples=samples, chunk=2)
        want = fisher(CLF.apply, params, data, ctx, samples=samples,
                      chunk=2, dense=False)
        assert_close(got, want, rtol=1e-4, atol=1e-7)
    # n >= count: every valid example once, never the padding
    assert_close(fisher(CLF.apply, params, data, ctx, samples=7),
                 loop_fisher(params, data, ctx, CLF.apply), rtol=1e-4,
                 atol=1e-7)


def _second_layer(params):
    return {'layer': params['classifier']['Dense_1']}


def _copied(params):
    return jax.tree.map(lambda p: p + 0.0, params['classifier'])


def test_dense_fisher_keeps_select_semantics():
    params, data = dense_params(gated=True), tiny_data()
    ctx = ctx_at(1, 'task')
    assert dense_taps(CLF.apply, params, _second_layer) is not None
    got = fisher(CLF.apply, params, data, ctx, select=_second_layer)
    want = fisher(CLF.apply, params, data, ctx, select=_second_layer,
                  dense=False)
    assert jax.tree.structure(got) == jax.tree.structure(
        _second_layer(params))
    assert_close(got, want, rtol=1e-4, atol=1e-7)
    # new arrays (or parameters outside the classifier): the generic path
    assert dense_taps(CLF.apply, params, _copied) is None
    assert dense_taps(CLF.apply, params, lambda p: p['gates']) is None
    assert_close(fisher(CLF.apply, params, data, ctx, select=_copied),
                 fisher(CLF.apply, params, data, ctx), rtol=1e-4,
                 atol=1e-7)


def test_other_models_take_the_generic_path():
    assert dense_taps(linear, linear_params()) is None
    assert dense_taps(mlp, mlp_params()) is None
    sep = separate_classifiers((3,), num_tasks=2, num_outputs=C,
                               input_dim=D)
    params = {'classifier': sep.init(jax.random.PRNGKey(0))}
    assert dense_taps(sep.apply, params) is None
    got = fisher(sep.apply, params, tiny_data(), ctx_at(1, 'task'), chunk=3)
    assert jax.tree.structure(got) == jax.tree.structure(
        params['classifier'])


def test_ewc_consolidates_with_the_dense_fisher():
    params, data = dense_params(gated=True), tiny_data()
    m = ewc(CLF.apply, strength=1.0, online=True)
    state = jax.jit(m.consolidate)(m.init(params, None), params, data,
                                   ctx_at(0, 'task'))
    assert_close(state.fisher, loop_fisher(params, data, ctx_at(0, 'task'),
                                           CLF.apply), rtol=1e-4, atol=1e-7)


def penalty_and_grad(m, params, state):
    """``m``'s penalty and its gradient w.r.t. the classifier (jitted)."""
    f = jax.value_and_grad(lambda p: m.loss(p, state, None, None)['penalty'])
    value, grad = jax.jit(f)(params)
    return float(value), to_np(grad['classifier'])


def test_penalty_is_half_strength_weighted_distance_by_hand():
    theta = {'classifier': {'w': jnp.array([[1.0, 2.0]]),
                            'b': jnp.array([0.0])}}
    anchor = {'w': jnp.array([[0.0, 1.0]]), 'b': jnp.array([2.0])}
    fish = {'w': jnp.array([[2.0, 4.0]]), 'b': jnp.array([1.0])}
    online = ewc(linear, strength=3.0, online=True, gamma=0.5)
    # 3 * 0.5 * 0.5 * (2*1 + 4*1 + 1*4) = 7.5; grad = 3 * 0.5 * F * diff
    value, grad = penalty_and_grad(online, theta,
                                   OnlineEWCState(anchor, fish))
    np.testing.assert_allclose(value, 7.5, rtol=1e-6)
    np.testing.assert_allclose(grad['w'], [[3.0, 6.0]], rtol=1e-6)
    np.testing.assert_allclose(grad['b'], [-3.0], rtol=1e-6)
    offline = ewc(linear, strength=3.0)
    stacked = EWCState(jax.tree.map(jnp.zeros_like, anchor),
                       jax.tree.map(jnp.zeros_like, fish), jnp.float32(0))
    stacked = add_quadratic(stacked, fish, anchor)
    stacked = add_quadratic(stacked, jax.tree.map(lambda f: 2 * f, fish),
                            jax.tree.map(lambda a: 0 * a, anchor))
    # slot 0: 10, slot 1: 2 * (2*1 + 4*4 + 0) = 36; 3 * 0.5 * 46 = 69
    value, grad = penalty_and_grad(offline, theta, stacked)
    np.testing.assert_allclose(value, 69.0, rtol=1e-6)
    # 3 * (F0 (theta - a0) + F1 (theta - a1))
    np.testing.assert_allclose(grad['w'], [[3 * (2 + 4), 3 * (4 + 16)]],
                               rtol=1e-6)
    np.testing.assert_allclose(grad['b'], [3 * (-2.0 + 0.0)], rtol=1e-6)


def test_offline_keeps_one_anchor_and_fisher_per_task():
    data, strength = tiny_data(), 7.0
    m = ewc(linear, strength=strength, chunk=2)
    p0, p1 = linear_params(1), linear_params(2)
    probe = shifted(p0, 0.3)
    state = m.init(p0, jax.random.PRNGKey(0))
    assert penalty_and_grad(m, probe, state)[0] == 0.0
    consolidate = jax.jit(m.consolidate)
    state = consolidate(state, p0, data, ctx_at(0))
    state = consolidate(state, p1, data, ctx_at(1))
    f0 = to_np(fisher(linear, p0, data, ctx_at(0), chunk=2))
    f1 = to_np(fisher(linear, p1, data, ctx_at(1), chunk=2))
    a0, a1 = to_np(p0['classifier']), to_np(p1['classifier'])

    assert_close(state.fisher, jax.tree.map(np.add, f0, f1), rtol=1e-5)
    th = to_np(probe['classifier'])
    want = strength / 2 * sum(np.sum(f0[k] * (th[k] - a0[k]) ** 2
                                     + f1[k] * (th[k] - a1[k]) ** 2)
                              for k in th)
    value, grad = penalty_and_grad(m, probe, state)
    np.testing.assert_allclose(value, want, rtol=1e-5)
    assert_close(grad, {k: strength * (f0[k] * (th[k] - a0[k])
                                       + f1[k] * (th[k] - a1[k]))
                        for k in th}, rtol=1e-5, atol=1e-7)


def test_online_fisher_decays_with_gamma_and_penalty_has_extra_gamma():
    data, strength, gamma = tiny_data(), 2.0, 0.25
    m = ewc(linear, strength=strength, online=True, gamma=gamma, chunk=2)
    p0, p1 = linear_params(1), linear_params(2)
    consolidate = jax.jit(m.consolidate)
    state = m.init(p0, jax.random.PRNGKey(0))
    state = consolidate(state, p0, data, ctx_at(0))
    state = consolidate(state, p1, data, ctx_at(1))
    f0 = to_np(fisher(linear, p0, data, ctx_at(0), chunk=2))
    f1 = to_np(fisher(linear, p1, data, ctx_at(1), chunk=2))
    f = jax.tree.map(lambda a, b: gamma * a + b, f0, f1)
    assert_close(state.fisher, f, rtol=1e-5)
    assert_close(state.anchor, p1['classifier'])
    probe = shifted(p1, 0.2)
    d = jax.tree.map(np.subtract, to_np(probe['classifier']),
                     to_np(p1['classifier']))
    value, grad = penalty_and_grad(m, probe, state)
    np.testing.assert_allclose(
        value, strength / 2 * gamma * sum(np.sum(f[k] * d[k] ** 2)
                                          for k in d), rtol=1e-5)
    assert_close(grad, {k: strength * gamma * f[k] * d[k] for k in d},
                 rtol=1e-5)


def test_hyperparameters_may_be_vmapped_tracers():
    data, p0 = tiny_data(), linear_params(1)
    probe = shifted(p0, 0.1)

    def run(strength, gamma):
        m = ewc(linear, strength=strength, online=True, gamma=gamma,
                chunk=2)
        state = m.init(p0, jax.random.PRNGKey(0))
        state = m.consolidate(state, p0, data, ctx_at(0))
        state = m.consolidate(state, p0, data, ctx_at(0))
        return m.loss(probe, state, None, None)['penalty']

    got = np.asarray(jax.jit(jax.vmap(run))(jnp.array([1.0, 2.0]),
                                            jnp.array([1.0, 0.5])))
    # F = (1 + gamma) F0, so penalty ~ strength * gamma * (1 + gamma)
    assert got[0] > 0
    np.testing.assert_allclose(got[1] / got[0], (2 * 0.5 * 1.5) / (1 * 1 * 2),
                               rtol=1e-5)


def test_summed_quadratic_equals_per_task_sum():
    """Offline EWC keeps sum_k F_k (theta - a_k)**2 as one quadratic: same
    value and gradient as the explicit sum at any theta, with Fisher
    entries that are zero for some tasks or all of them."""
    rng = np.random.RandomState(0)
    shape, tasks = (7, 3), 5
    fs = [np.float32(rng.rand(*shape) * (rng.rand(*shape) > 0.3))
          for _ in range(tasks)]
    fs[0][0, 0] = fs[1][0, 0] = 0.0
    for f in fs:
        f[1, :] = 0.0  # a row no task cares about
    anchors = [np.float32(rng.randn(*shape)) for _ in range(tasks)]
    state = EWCState({'w': jnp.zeros(shape)}, {'w': jnp.zeros(shape)},
                     jnp.float32(0))
    add = jax.jit(add_quadratic)
    for f, a in zip(fs, anchors):
        state = add(state, {'w': jnp.asarray(f)}, {'w': jnp.asarray(a)})
    m = ewc(lambda p, x, t: x, strength=2.0, select=lambda p: p['w'])
    for _ in range(3):
        theta = np.float32(rng.randn(*shape))
        want = sum(np.sum(np.float64(f) * (theta - a) ** 2)
                   for f, a in zip(fs, anchors))
        want_grad = sum(2.0 * f * (theta - a) for f, a in zip(fs, anchors))
        st = EWCState(state.anchor['w'], state.fisher['w'], state.offset)
        value, grad = jax.value_and_grad(
            lambda th: m.loss({'w': th}, st, None, None)['penalty'])(
            jnp.asarray(theta))
        np.testing.assert_allclose(value, want, rtol=1e-5)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-5)
