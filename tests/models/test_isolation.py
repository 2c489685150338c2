"""The parameter-isolation backbones: PSP's contexts are the same network
with each convolution's input channels signed by the task's context; a
separate network per task is the plain network with that task's copy,
and a batch that mixes tasks is refused loudly (NaN), not answered
wrongly."""

import jax
import jax.numpy as jnp
import numpy as np
import seeded_resnet  # tests/models, on the path as the test's folder

from jcl.models import backbone, resnet
from jcl.models import torchvision_import as tvi

SIZE = 32


def _variables(net, sd):
    x = jnp.zeros((1, SIZE, SIZE, 3))
    v = jax.jit(net.init)(jax.random.PRNGKey(0), x, jnp.zeros(1, jnp.int32))
    return tvi.load_backbone(v, sd, 18)


def _apply(net, v, x, task):
    return np.asarray(jax.jit(lambda v, x, t: net.apply(v, x, t)['logits'])(
        v, x, task))


def _x(n=2):
    return jax.random.uniform(jax.random.PRNGKey(3), (n, SIZE, SIZE, 3))


def _plain(num_tasks):
    return resnet.ResNet(depth=18, stem='imagenet', num_tasks=num_tasks,
                         head_width=4, bn='per-task', head='per-task')


def test_psp_is_the_network_with_signed_input_channels():
    sd = seeded_resnet.state_dict(tvi.torchvision_keys(18))
    psp = resnet.ResNet(depth=18, stem='imagenet', num_tasks=3, head_width=4,
                        bn='per-task', head='per-task', convs='psp')
    vp = _variables(psp, sd)
    ctx = vp['contexts']
    c = np.asarray(ctx['conv1_psp'])
    assert c.shape == (3, 3) and np.array_equal(c[0], np.ones(3))
    assert set(np.unique(np.asarray(ctx['layer2_0']['conv1_psp']))) == \
        {-1.0, 1.0}
    plain = _plain(3)
    x = _x()
    for t in (0, 2):
        # the same weights with kernel[:, :, i, :] * context[t, i]
        vs = jax.tree.map(lambda a: a, {k: v for k, v in vp.items()
                                        if k != 'contexts'})

        def signed(path, kernel):
            names = [p.key for p in path]
            key = names[:-2] + [names[-2] + '_psp']
            node = ctx
            for n in key:
                node = node[n]
            return kernel * np.asarray(node)[t][None, None, :, None]

        vs['params'] = jax.tree_util.tree_map_with_path(
            lambda p, a: signed(p, a) if p[-1].key == 'kernel' else a,
            vp['params'])
        task = jnp.full(2, t)
        np.testing.assert_allclose(_apply(psp, vp, x, task),
                                   _apply(plain, vs, x, task),
                                   rtol=1e-5, atol=1e-5)


def test_separate_networks_use_their_tasks_copy_and_refuse_mixed_batches():
    sd = seeded_resnet.state_dict(tvi.torchvision_keys(18))
    sep = resnet.ResNet(depth=18, stem='imagenet', num_tasks=2, head_width=4,
                        bn='per-task', head='per-task', convs='per-task')
    v = _variables(sep, sd)
    assert 'params' not in v or not jax.tree.leaves(v['params'])
    kernel = np.asarray(v['banks']['layer1_0']['conv2']['kernel'])
    np.testing.assert_array_equal(kernel[1], kernel[0])  # both pre-trained
    # task 1's copy changed: task 0's outputs do not move, task 1's do
    moved = jax.tree.map(lambda a: a, v)
    moved['banks']['layer1_0']['conv2']['kernel'] = jnp.asarray(
        kernel).at[1].multiply(0.5)
    x = _x()
    t0, t1 = jnp.zeros(2, jnp.int32), jnp.ones(2, jnp.int32)
    np.testing.assert_array_equal(_apply(sep, moved, x, t0),
                                  _apply(sep, v, x, t0))
    assert not np.allclose(_apply(sep, moved, x, t1), _apply(sep, v, x, t1))
    # task 1 equals the plain network holding task 1's copy
    plain = _plain(2)
    vp = _variables(plain, sd)
    vp['params'] = jax.tree_util.tree_map_with_path(
        lambda p, a: a * (0.5 if [k.key for k in p] ==
                          ['layer1_0', 'conv2', 'kernel'] else 1.0),
        vp['params'])
    np.testing.assert_allclose(_apply(sep, moved, x, t1),
                               _apply(plain, vp, x, t1), rtol=1e-6,
                               atol=1e-6)
    assert np.isnan(_apply(sep, v, x, jnp.array([0, 1]))).all()


def test_isolation_modes_train_what_they_should():
    for mode, trained in (('psp', {'params', 'banks'}),
                          ('separate', {'banks'})):
        m = backbone.resnet_model(depth=18, stem='small', num_tasks=2,
                                  head_width=3, mode=mode,
                                  input_shape=(8, 8, 3))
        params, state = jax.eval_shape(m.init, jax.random.PRNGKey(0))
        labels = m.labels(params)
        got = {top for top in labels
               if any(g != 'frozen' for g in jax.tree.leaves(labels[top]))}
        assert got == trained, mode
        assert ('contexts' in state) == (mode == 'psp')
