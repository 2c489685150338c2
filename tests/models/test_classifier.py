"""Oracles of the classifier models: XdG gating, separate networks, the
paired classifier+generator, BatchNorm as model state."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcl.core import taskdata as data_lib
from jcl.core.losses import cross_entropy
from jcl.core.model import view
from jcl.methods import supervised
from jcl.models import (
    XdG,
    conv_classifier,
    mlp_classifier,
    paired,
    separate_classifiers,
    vae_model,
)
from jcl.models.classifier import xdg_gates
from jcl.tasks import protocols
from jcl.training import learner as learner_lib
from jcl.training import task as train_lib


@pytest.mark.parametrize('proportion', [0.0, 0.25, 0.9])
def test_xdg_gates_off_exactly_the_proportion(proportion):
    gates = xdg_gates(jax.random.PRNGKey(3), (40, 20), num_tasks=5,
                      proportion=proportion)
    for g, units in zip(gates, (40, 20)):
        g = np.asarray(g)
        assert set(np.unique(g).tolist()) <= {0.0, 1.0}
        np.testing.assert_array_equal((g == 0).sum(1),
                                      round(proportion * units))
    if proportion == 0.9:  # tasks draw different subsets
        assert len({tuple(r) for r in np.asarray(gates[0])}) == 5


def test_xdg_gated_units_get_exactly_zero_gradient():
    clf = mlp_classifier((12, 10), num_outputs=4, input_dim=6,
                         xdg=XdG(num_tasks=3, proportion=0.5))
    params, state = clf.init(jax.random.PRNGKey(0))
    x = jax.random.uniform(jax.random.PRNGKey(1), (8, 6))
    task = jnp.full((8,), 2, jnp.int32)
    y = jnp.arange(8) % 4

    def loss(p):
        out, _ = clf.apply(p, state, x, task, train=True)
        return jnp.mean(cross_entropy(out['logits'], y,
                                      jnp.ones((8, 4), bool)))

    g = jax.grad(loss)(params)
    for layer, gate in enumerate(state['gates']):
        off = np.asarray(gate[2]) == 0
        kernel = np.asarray(g[f'Dense_{layer}']['kernel'])
        assert off.sum() == kernel.shape[1] // 2
        np.testing.assert_array_equal(kernel[:, off], 0.0)
        assert np.abs(kernel[:, ~off]).max() > 0
    # the gated unit outputs relu(bias): hand computation of layer 1
    out, _ = clf.apply(params, state, x, task, train=False)
    p = jax.tree.map(np.asarray, params)
    h = np.maximum((np.asarray(x) @ p['Dense_0']['kernel'])
                   * np.asarray(state['gates'][0][2])
                   + p['Dense_0']['bias'], 0)
    h = np.maximum((h @ p['Dense_1']['kernel'])
                   * np.asarray(state['gates'][1][2])
                   + p['Dense_1']['bias'], 0)
    np.testing.assert_allclose(out['features'], h, rtol=1e-5, atol=1e-6)


def test_separate_networks_leave_the_other_tasks_bit_identical(arrays):
    proto = protocols.class_split('s', arrays, 'task')
    model = separate_classifiers((8, 8), num_tasks=5, num_outputs=10,
                                 input_dim=784)
    learner = learner_lib.Learner(lambda hp: model,
                                lambda hp, m: supervised(), num_steps=15,
                                batch_size=16, reset_optimizer=True)
    hp = {'lr': 1e-2}
    state = learner_lib.init_state(learner, hp, jax.random.PRNGKey(0))
    task = jax.jit(functools.partial(train_lib.train_task, learner))
    train = data_lib.to_device(proto.train)
    active = jnp.asarray(proto.active)
    for t in range(3):
        before = state.params
        state, _, _ = task(state, hp, train, None, active, jnp.int32(t))
        for other in range(5):
            a = jax.tree.map(lambda p: p[other], before)
            b = jax.tree.map(lambda p: p[other], state.params)
            if other == t:
                assert max(float(jnp.abs(u - v).max()) for u, v in
                           zip(jax.tree.leaves(a), jax.tree.leaves(b))) > 0
            else:
                chex.assert_trees_all_equal(a, b)


def test_paired_model_routes_parameters_and_views():
    clf = mlp_classifier((8,), num_outputs=3, input_dim=5)
    gen = vae_model((8,), latent=2, input_dim=5)
    model = paired(clf, gen)
    params, state = model.init(jax.random.PRNGKey(0))
    cp, _ = clf.init(jax.random.PRNGKey(0))
    chex.assert_trees_all_equal(params['classifier'], cp)
    x = jnp.full((4, 5), 0.3)
    task = jnp.zeros(4, jnp.int32)
    out, _ = model.apply(params, state, x, task, train=True)
    alone, _ = clf.apply(params['classifier'], {}, x, task)
    np.testing.assert_array_equal(out['logits'], alone['logits'])
    g_out, _ = gen.apply(params['generator'], {}, x, task)
    np.testing.assert_array_equal(out['mu'], g_out['mu'])
    k = jax.random.PRNGKey(5)
    np.testing.assert_array_equal(
        view(model, 'sample')(params, state, k, 3),
        gen.views['sample'](params['generator'], {}, k, 3))
    assert model.main(params) is params['classifier']


def test_batchnorm_statistics_are_model_state():
    clf = conv_classifier((4,), hidden=(6,), num_outputs=2,
                          input_shape=(6, 6, 1))
    params, state = clf.init(jax.random.PRNGKey(0))
    x = 3.0 + jax.random.normal(jax.random.PRNGKey(1), (10, 6, 6, 1))
    task = jnp.zeros(10, jnp.int32)
    _, same = clf.apply(params, state, x, task, train=False)
    chex.assert_trees_all_equal(same, state)  # evaluation: frozen
    out, new = clf.apply(params, state, x, task, train=True)
    stats = new['batch_stats']['conv']['BatchNorm_0']
    conv = jax.lax.conv_general_dilated(
        x, params['conv']['Conv_0']['kernel'], (1, 1), ((1, 1), (1, 1)),
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    # PyTorch's momentum 0.1: new = 0.9 old + 0.1 batch mean
    np.testing.assert_allclose(stats['mean'], 0.1 * conv.mean((0, 1, 2)),
                               rtol=1e-4, atol=1e-6)
    # training mode normalises with the batch's own statistics
    out_eval, _ = clf.apply(params, new, x, task, train=False)
    assert float(jnp.abs(out['logits'] - out_eval['logits']).max()) > 1e-3


@pytest.mark.parametrize('impl', ['patches', 'slices'])
@pytest.mark.parametrize('k,stride,pad', [(3, 1, 1), (3, 2, 1), (7, 2, 3),
                                          (1, 2, 0)])
def test_conv_implementations_agree_with_gradients(impl, k, stride, pad):
    from jcl.models.conv import conv2d
    x = jax.random.uniform(jax.random.PRNGKey(0), (3, 9, 7, 4))
    w = jax.random.normal(jax.random.PRNGKey(1), (k, k, 4, 5))
    a = conv2d(x, w, stride, pad, 'lax')
    b = conv2d(x, w, stride, pad, impl)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)

    def loss(w, x, form):
        return jnp.sum(jnp.sin(conv2d(x, w, stride, pad, form)))
    ga = jax.grad(loss, argnums=(0, 1))(w, x, 'lax')
    gb = jax.grad(loss, argnums=(0, 1))(w, x, impl)
    for u, v in zip(ga, gb):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-4)
