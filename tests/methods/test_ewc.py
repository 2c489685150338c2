"""EWC: the vectorised Fisher against closed forms and explicit loops, the
dense fast path against the generic path, and the offline/online
penalties against hand formulas."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcl.core import losses
from jcl.core import taskdata as data_lib
from jcl.core.model import make_model
from jcl.core.per_example import dense_layers, weighted_powers
from jcl.core.records import Forward, Snapshot, TaskCtx, TaskEnd
from jcl.methods.elastic_weight_consolidation import (
    EWCState,
    OnlineEWCState,
    add_quadratic,
    ewc,
)
from jcl.methods.fisher import fisher_diagonal, log_probs
from jcl.models.classifier import (
    XdG,
    mlp_classifier,
    separate_classifiers,
    xdg_gates,
)
from jcl.models.paired import paired
from jcl.models.vae import vae_model
from jcl.tasks.protocols import active_table, pixels

D, C = 3, 4


def as_model(fn, **kw):
    """A bare ``fn(params, model_state, x, task) -> logits`` as a Model."""
    def apply(params, state, x, task, *, train=False):
        del train  # unused
        return {'logits': fn(params, state, x, task)}, state

    return make_model(init=None, apply=apply, **kw)


_JITTED = {}


def fisher(model, params, state, data, ctx, **kw):
    """``fisher_diagonal`` of ``model`` at ``params`` (jitted once per
    model and keyword arguments, shared by the tests)."""
    key = (id(model), tuple(sorted(kw.items())))
    if key not in _JITTED:
        _JITTED[key] = (model, jax.jit(
            lambda p, s, d, c: fisher_diagonal(
                model, TaskEnd(p, s, d, pixels), c, **kw)))
    return _JITTED[key][1](params, state, data, ctx)


def to_np(tree):
    return jax.tree.map(np.asarray, tree)


def assert_close(got, want, **kw):
    assert jax.tree.structure(to_np(got)) == jax.tree.structure(to_np(want))
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


TABLES = {s: jnp.asarray(active_table(s, [[0, 1], [2, 3]]))
          for s in ('task', 'class')}


def ctx_at(task_id, scenario='class', seed=0):
    return TaskCtx(jnp.asarray(task_id, jnp.int32),
                   jax.random.PRNGKey(seed), TABLES[scenario])


def _linear(params, state, x, task):
    del state, task  # unused
    return x @ params['w'] + params['b']


LINEAR = as_model(_linear)


def linear_params(seed=1):
    rng = np.random.RandomState(seed)
    return {'w': jnp.asarray(rng.randn(D, C), jnp.float32),
            'b': jnp.asarray(0.5 * rng.randn(C), jnp.float32)}


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
    got = to_np(fisher(LINEAR, params, {}, data, ctx, chunk=2))
    x, _ = task_inputs(data, task_id)
    mask = np.asarray(ctx.active[task_id, task_id])
    p = to_np(params)
    logits = np.where(mask, x @ p['w'] + p['b'], -np.inf)
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    v = prob * (1 - prob)
    want_w = (x[:, :, None] ** 2 * v[:, None, :]).mean(0)
    np.testing.assert_allclose(got['w'], want_w, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got['b'], v.mean(0), rtol=1e-5, atol=1e-7)
    assert np.all(got['b'][~mask] == 0) and np.all(got['b'][mask] > 0)


def _tanh_mlp(params, state, x, task):
    """A 3-4-4 tanh network with a per-task output bias held in the model
    state (so ``task`` matters, like XdG gates, and it is not trained)."""
    h = jnp.tanh(x @ params['w1'] + params['b1'])
    return h @ params['w2'] + params['b2'] + state['bias'][task]


MLP = as_model(_tanh_mlp)


def mlp_params():
    rng = np.random.RandomState(3)
    shapes = {'w1': (D, 4), 'b1': (4,), 'w2': (4, C), 'b2': (C,)}
    params = {k: jnp.asarray(rng.randn(*v), jnp.float32)
              for k, v in shapes.items()}
    return params, {'bias': jnp.asarray(rng.randn(2, C), jnp.float32)}


_GRAD_TERMS = {}


def grad_term(model, params, state, x1, task1, mask, c):
    """``p(c|x)`` and ``grad log p(c|x)`` of one example and class."""
    if id(model) not in _GRAD_TERMS:
        @jax.jit
        def term(params, state, x1, task1, mask, c):
            def logp(q):
                out, _ = model.apply(q, state, x1[None], task1[None],
                                     train=False)
                return jax.nn.log_softmax(
                    losses.mask_logits(out['logits'][0], mask))[c]

            return jnp.exp(logp(params)), jax.grad(logp)(params)

        _GRAD_TERMS[id(model)] = (model, term)
    return _GRAD_TERMS[id(model)][1](params, state, x1, task1, mask, c)


def loop_fisher(model, params, state, data, ctx):
    """The slow oracle: a Python loop over examples and active classes."""
    t = int(ctx.task_id)
    x, task = task_inputs(data, t)
    active = np.asarray(ctx.active)
    total = jax.tree.map(np.zeros_like, to_np(params))
    for i in range(len(x)):
        mask = active[t, task[i]]
        for c in np.flatnonzero(mask):
            prob, g = to_np(grad_term(model, params, state,
                                      jnp.float32(x[i]), task[i], mask, c))
            total = jax.tree.map(lambda a, b, w=prob: a + w * b ** 2,
                                 total, g)
    return jax.tree.map(lambda a: a / len(x), total)


def test_fisher_matches_explicit_loop_on_mlp():
    (params, state), data = mlp_params(), tiny_data()
    for scenario in ('task', 'class'):  # own head vs all classes so far
        ctx = ctx_at(1, scenario)
        got = fisher(MLP, params, state, data, ctx, chunk=3)
        assert_close(got, loop_fisher(MLP, params, state, data, ctx),
                     rtol=1e-4, atol=1e-7)
        assert np.all((np.asarray(got['b2']) > 0)
                      == np.asarray(ctx.active[1, 1]))


def _whole(p):
    return p


def test_fisher_samples_uses_n_distinct_valid_examples():
    data, params = tiny_data(), linear_params()
    ctx = ctx_at(0)
    x, task = task_inputs(data, 0)

    def example_fisher(xi, ti):     # one example's Fisher
        return weighted_powers(
            LINEAR, Snapshot(params, {}), xi[None], ti[None], log_probs,
            ctx.active[0, 0][None], output_weight=jnp.exp, select=_whole)

    each = to_np(jax.jit(jax.vmap(example_fisher))(jnp.float32(x), task))
    full = fisher(LINEAR, params, {}, data, ctx, chunk=2)
    assert_close(full, jax.tree.map(lambda f: f.mean(0), each), rtol=1e-5)
    # n >= count: all valid examples, never the padding
    assert_close(fisher(LINEAR, params, {}, data, ctx, samples=7, chunk=2),
                 full, rtol=1e-5)
    pairs = [jax.tree.map(lambda f, i=i, j=j: (f[i] + f[j]) / 2, each)
             for i, j in itertools.combinations(range(len(x)), 2)]
    seen = set()
    for seed in range(4):
        got = to_np(fisher(LINEAR, params, {}, data, ctx_at(0, seed=seed),
                           samples=2, chunk=2))
        match = [k for k, f in enumerate(pairs)
                 if np.allclose(f['w'], got['w'], rtol=1e-5)
                 and np.allclose(f['b'], got['b'], rtol=1e-5)]
        assert len(match) == 1  # the mean of one pair of valid examples
        seen.add(match[0])
    assert len(seen) > 1  # the key draws the sample


HIDDEN = (5, 4)
CLF = mlp_classifier(HIDDEN, num_outputs=C, input_dim=D,
                     xdg=XdG(num_tasks=2, proportion=0.4))


def dense_params(gated):
    """``CLF``'s parameters (scaled up, so the softmax is far from flat),
    with XdG gates in the model state (2 of 5 and 2 of 4 units off per
    task) or none."""
    params, _ = CLF.init(jax.random.PRNGKey(4))
    params = jax.tree.map(lambda p: 3.0 * p, params)
    state = {}
    if gated:
        state['gates'] = xdg_gates(jax.random.PRNGKey(5), HIDDEN,
                                   num_tasks=2, proportion=0.4)
    return params, state


def test_xdg_gates_are_model_state_drawn_from_fold_in_1():
    key = jax.random.PRNGKey(4)
    params, state = CLF.init(key)
    want = xdg_gates(jax.random.fold_in(key, 1), HIDDEN, num_tasks=2,
                     proportion=0.4)
    assert_close(state['gates'], want)
    for gate, units in zip(state['gates'], HIDDEN):
        # exactly round(0.4 * units) units off per task
        np.testing.assert_array_equal(
            np.asarray(gate).sum(1), [units - round(0.4 * units)] * 2)
    assert sorted(params) == ['Dense_0', 'Dense_1', 'Dense_2']


def test_dense_taps_are_the_network_layers_and_inputs():
    (params, state), data = dense_params(gated=True), tiny_data()
    taps = CLF.views['taps']
    assert taps.layers(params) is params
    assert jax.tree.map(np.shape, params) == {
        'Dense_0': {'kernel': (D, 5), 'bias': (5,)},
        'Dense_1': {'kernel': (5, 4), 'bias': (4,)},
        'Dense_2': {'kernel': (4, C), 'bias': (C,)}}
    x, task = task_inputs(data, 1)
    x = jnp.float32(x)
    zeros = {name: {'pre': jnp.zeros((len(x), layer['bias'].shape[0])),
                    'out': jnp.zeros((len(x), layer['bias'].shape[0]))}
             for name, layer in params.items()}
    logits, inputs = taps.apply(params, state, x, task, zeros)
    out, new_state = CLF.apply(params, state, x, task, train=True)
    assert new_state is state
    assert_close(logits, out['logits'], rtol=1e-6)
    # by hand, with the task's gates on x @ W (not on the bias)
    p = to_np(params)
    g = [np.asarray(gate)[task] for gate in state['gates']]
    h1 = np.maximum((np.asarray(x) @ p['Dense_0']['kernel']) * g[0]
                    + p['Dense_0']['bias'], 0)
    h2 = np.maximum((h1 @ p['Dense_1']['kernel']) * g[1]
                    + p['Dense_1']['bias'], 0)
    assert_close(inputs, {'Dense_0': x, 'Dense_1': h1, 'Dense_2': h2},
                 rtol=1e-5, atol=1e-6)
    assert_close(logits, h2 @ p['Dense_2']['kernel'] + p['Dense_2']['bias'],
                 rtol=1e-5, atol=1e-6)
    assert_close(out['features'], h2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('gated', [False, True])
@pytest.mark.parametrize('scenario', ['task', 'class'])
def test_dense_fisher_equals_generic_and_explicit_loop(scenario, gated):
    (params, state), data = dense_params(gated), tiny_data()
    assert dense_layers(CLF, params, CLF.main) is params
    for task_id in (0, 1):  # 5 of 7 and 4 of 7 valid entries
        ctx = ctx_at(task_id, scenario)
        want = loop_fisher(CLF, params, state, data, ctx)
        generic = fisher(CLF, params, state, data, ctx, chunk=3,
                         dense=False)
        assert_close(generic, want, rtol=1e-4, atol=1e-7)
        # chunks of 2 (padded 7 -> 8), 3 (7 -> 9) and the default
        for chunk in (2, 3, None):
            got = fisher(CLF, params, state, data, ctx, chunk=chunk)
            assert_close(got, want, rtol=1e-4, atol=1e-7)
            assert_close(got, generic, rtol=1e-4, atol=1e-7)
        got = to_np(got)
        assert np.all((got['Dense_2']['bias'] > 0)
                      == np.asarray(ctx.active[task_id, task_id]))
        if gated:  # the task's gated units: no gradient into their weights
            for layer, gate in enumerate(state['gates']):
                off = np.asarray(gate[task_id]) == 0
                kernel = got[f'Dense_{layer}']['kernel']
                assert np.all(kernel[:, off] == 0)
                assert np.any(kernel[:, ~off] > 0)


@pytest.mark.parametrize('scenario', ['task', 'class'])
def test_dense_fisher_samples_draws_the_generic_paths_examples(scenario):
    (params, state), data = dense_params(gated=True), tiny_data()
    for seed, samples in itertools.product(range(3), (2, 3, 7)):
        ctx = ctx_at(0, scenario, seed)
        got = fisher(CLF, params, state, data, ctx, samples=samples,
                     chunk=2)
        want = fisher(CLF, params, state, data, ctx, samples=samples,
                      chunk=2, dense=False)
        assert_close(got, want, rtol=1e-4, atol=1e-7)
    # n >= count: every valid example once, never the padding
    assert_close(fisher(CLF, params, state, data, ctx, samples=7),
                 loop_fisher(CLF, params, state, data, ctx), rtol=1e-4,
                 atol=1e-7)


def _second_layer(params):
    return {'layer': params['Dense_1']}


def _copied(params):
    return jax.tree.map(lambda p: p + 0.0, params)


def test_dense_fisher_keeps_select_semantics():
    (params, state), data = dense_params(gated=True), tiny_data()
    ctx = ctx_at(1, 'task')
    assert dense_layers(CLF, params, _second_layer) is not None
    got = fisher(CLF, params, state, data, ctx, select=_second_layer)
    want = fisher(CLF, params, state, data, ctx, select=_second_layer,
                  dense=False)
    assert jax.tree.structure(got) == jax.tree.structure(
        _second_layer(params))
    assert_close(got, want, rtol=1e-4, atol=1e-7)
    assert_close(got, _second_layer(to_np(
        fisher(CLF, params, state, data, ctx))), rtol=1e-4, atol=1e-7)
    # new arrays: the generic path, with the same values
    assert dense_layers(CLF, params, _copied) is None
    assert_close(fisher(CLF, params, state, data, ctx, select=_copied),
                 fisher(CLF, params, state, data, ctx), rtol=1e-4,
                 atol=1e-7)


def _generator_part(params):
    return params['generator']


def test_paired_model_fisher_is_the_classifiers_by_its_taps():
    """A classifier paired with a generator: ``main`` (the classifier) goes
    the dense path, parameters outside the taps' layers do not."""
    (clf_params, state), data = dense_params(gated=True), tiny_data()
    model = paired(CLF, vae_model((3,), latent=2, input_dim=D))
    params, pstate = model.init(jax.random.PRNGKey(0))
    params = {**params, 'classifier': clf_params}
    pstate = {**pstate, 'classifier': state}
    assert dense_layers(model, params, model.main) is not None
    assert dense_layers(model, params, _generator_part) is None
    ctx = ctx_at(1, 'class')
    assert_close(fisher(model, params, pstate, data, ctx),
                 fisher(CLF, clf_params, state, data, ctx), rtol=1e-5,
                 atol=1e-8)


def test_other_models_take_the_generic_path():
    data = tiny_data()
    assert dense_layers(LINEAR, linear_params(), LINEAR.main) is None
    assert dense_layers(MLP, mlp_params()[0], MLP.main) is None
    sep = separate_classifiers((3,), num_tasks=2, num_outputs=C,
                               input_dim=D)
    params, state = sep.init(jax.random.PRNGKey(0))
    assert dense_layers(sep, params, sep.main) is None
    for task_id in (0, 1):
        ctx = ctx_at(task_id, 'task')
        got = to_np(fisher(sep, params, state, data, ctx, chunk=3))
        assert_close(got, loop_fisher(sep, params, state, data, ctx),
                     rtol=1e-4, atol=1e-7)
        # only the task's own network has a Fisher
        other = jax.tree.map(lambda f: f[1 - task_id], got)
        assert all(np.all(f == 0) for f in jax.tree.leaves(other))
        own = jax.tree.map(lambda f: f[task_id], got)
        assert all(np.any(f > 0) for f in jax.tree.leaves(own))


def test_ewc_consolidates_with_the_dense_fisher():
    (params, state), data = dense_params(gated=True), tiny_data()
    m = ewc(CLF, strength=1.0, online=True)
    ctx = ctx_at(0, 'task')
    consolidate = jax.jit(lambda ms, p, s, d, c: m.consolidate(
        ms, TaskEnd(p, s, d, pixels), c))
    mstate = consolidate(m.init(Snapshot(params, state), ctx), params,
                         state, data, ctx)
    assert_close(mstate.fisher, loop_fisher(CLF, params, state, data, ctx),
                 rtol=1e-4, atol=1e-7)
    assert_close(mstate.anchor, params)


def penalty(m, params, mstate):
    terms, aux = m.loss(mstate, Forward(params, {}, None, {}, {}), None)
    assert aux == {} and set(terms) == {'penalty'}
    return terms['penalty']


def penalty_and_grad(m, params, mstate):
    """``m``'s penalty and its gradient w.r.t. the parameters (jitted)."""
    f = jax.value_and_grad(lambda p: penalty(m, p, mstate))
    value, grad = jax.jit(f)(params)
    return float(value), to_np(grad)


def test_penalty_is_half_strength_weighted_distance_by_hand():
    theta = {'w': jnp.array([[1.0, 2.0]]), 'b': jnp.array([0.0])}
    anchor = {'w': jnp.array([[0.0, 1.0]]), 'b': jnp.array([2.0])}
    fish = {'w': jnp.array([[2.0, 4.0]]), 'b': jnp.array([1.0])}
    online = ewc(LINEAR, strength=3.0, online=True, gamma=0.5)
    # 3 * 0.5 * 0.5 * (2*1 + 4*1 + 1*4) = 7.5; grad = 3 * 0.5 * F * diff
    value, grad = penalty_and_grad(online, theta,
                                   OnlineEWCState(anchor, fish))
    np.testing.assert_allclose(value, 7.5, rtol=1e-6)
    np.testing.assert_allclose(grad['w'], [[3.0, 6.0]], rtol=1e-6)
    np.testing.assert_allclose(grad['b'], [-3.0], rtol=1e-6)
    offline = ewc(LINEAR, strength=3.0)
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


def _consolidate(m):
    return jax.jit(lambda ms, p, d, c: m.consolidate(
        ms, TaskEnd(p, {}, d, pixels), c))


def test_offline_keeps_one_anchor_and_fisher_per_task():
    data, strength = tiny_data(), 7.0
    m = ewc(LINEAR, strength=strength, chunk=2)
    p0, p1 = linear_params(1), linear_params(2)
    probe = shifted(p0, 0.3)
    state = m.init(Snapshot(p0, {}), ctx_at(0))
    assert penalty_and_grad(m, probe, state)[0] == 0.0
    consolidate = _consolidate(m)
    state = consolidate(state, p0, data, ctx_at(0))
    state = consolidate(state, p1, data, ctx_at(1))
    f0 = to_np(fisher(LINEAR, p0, {}, data, ctx_at(0), chunk=2))
    f1 = to_np(fisher(LINEAR, p1, {}, data, ctx_at(1), chunk=2))
    a0, a1 = to_np(p0), to_np(p1)

    assert_close(state.fisher, jax.tree.map(np.add, f0, f1), rtol=1e-5)
    th = to_np(probe)
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
    m = ewc(LINEAR, strength=strength, online=True, gamma=gamma, chunk=2)
    p0, p1 = linear_params(1), linear_params(2)
    consolidate = _consolidate(m)
    state = m.init(Snapshot(p0, {}), ctx_at(0))
    state = consolidate(state, p0, data, ctx_at(0))
    state = consolidate(state, p1, data, ctx_at(1))
    f0 = to_np(fisher(LINEAR, p0, {}, data, ctx_at(0), chunk=2))
    f1 = to_np(fisher(LINEAR, p1, {}, data, ctx_at(1), chunk=2))
    f = jax.tree.map(lambda a, b: gamma * a + b, f0, f1)
    assert_close(state.fisher, f, rtol=1e-5)
    assert_close(state.anchor, p1)
    probe = shifted(p1, 0.2)
    d = jax.tree.map(np.subtract, to_np(probe), to_np(p1))
    value, grad = penalty_and_grad(m, probe, state)
    np.testing.assert_allclose(
        value, strength / 2 * gamma * sum(np.sum(f[k] * d[k] ** 2)
                                          for k in d), rtol=1e-5)
    assert_close(grad, {k: strength * gamma * f[k] * d[k] for k in d},
                 rtol=1e-5)


def test_frozen_leaves_and_select_are_left_out():
    """EWC regularises ``model.main`` (or ``select``) minus frozen leaves:
    a frozen leaf is a ``None`` hole in the anchor and the Fisher."""
    data, p0 = tiny_data(), linear_params(1)
    labels = lambda p: {'w': 'params', 'b': 'frozen'}  # noqa: E731
    frozen_b = as_model(_linear, labels=labels)
    m = ewc(frozen_b, strength=2.0, chunk=2)
    state = _consolidate(m)(m.init(Snapshot(p0, {}), ctx_at(0)), p0, data,
                            ctx_at(0))
    assert state.anchor['b'] is None and state.fisher['b'] is None
    f0 = to_np(fisher(LINEAR, p0, {}, data, ctx_at(0), chunk=2))
    np.testing.assert_allclose(state.fisher['w'], f0['w'], rtol=1e-5)
    probe = shifted(p0, 0.3)
    value, grad = penalty_and_grad(m, probe, state)
    d = np.asarray(probe['w']) - np.asarray(p0['w'])
    np.testing.assert_allclose(value, np.sum(f0['w'] * d ** 2), rtol=1e-5)
    np.testing.assert_array_equal(grad['b'], 0.0)
    # the same with a select of 'w' on the plain model
    m = ewc(LINEAR, strength=2.0, chunk=2, select=lambda p: {'w': p['w']})
    state = _consolidate(m)(m.init(Snapshot(p0, {}), ctx_at(0)), p0, data,
                            ctx_at(0))
    assert set(state.fisher) == {'w'}
    np.testing.assert_allclose(state.fisher['w'], f0['w'], rtol=1e-5)
    np.testing.assert_allclose(penalty_and_grad(m, probe, state)[0],
                               np.sum(f0['w'] * d ** 2), rtol=1e-5)


def test_hyperparameters_may_be_vmapped_tracers():
    data, p0 = tiny_data(), linear_params(1)
    probe = shifted(p0, 0.1)
    ctx = ctx_at(0)

    def run(strength, gamma):
        m = ewc(LINEAR, strength=strength, online=True, gamma=gamma,
                chunk=2)
        end = TaskEnd(p0, {}, data, pixels)
        state = m.init(Snapshot(p0, {}), ctx)
        state = m.consolidate(state, end, ctx)
        state = m.consolidate(state, end, ctx)
        return penalty(m, probe, state)

    got = np.asarray(jax.jit(jax.vmap(run))(jnp.array([1.0, 2.0]),
                                            jnp.array([1.0, 0.5])))
    # F = (1 + gamma) F0, penalty = strength / 2 * gamma * (1 + gamma) *
    # sum F0 d**2
    f0 = to_np(fisher(LINEAR, p0, {}, data, ctx, chunk=2))
    d = jax.tree.map(np.subtract, to_np(probe), to_np(p0))
    base = sum(np.sum(f0[k] * d[k] ** 2) for k in d)
    np.testing.assert_allclose(
        got, [s / 2 * g * (1 + g) * base for s, g in [(1, 1), (2, .5)]],
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
    m = ewc(as_model(lambda p, s, x, t: x), strength=2.0,
            select=lambda p: p['w'])
    for _ in range(3):
        theta = np.float32(rng.randn(*shape))
        want = sum(np.sum(np.float64(f) * (theta - a) ** 2)
                   for f, a in zip(fs, anchors))
        want_grad = sum(2.0 * f * (theta - a) for f, a in zip(fs, anchors))
        st = EWCState(state.anchor['w'], state.fisher['w'], state.offset)
        value, grad = jax.value_and_grad(
            lambda th: penalty(m, {'w': th}, st))(jnp.asarray(theta))
        np.testing.assert_allclose(value, want, rtol=1e-5)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-5)
