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


def test_grouped_conv_equals_xlas_grouped_convolution():
    from jcl.models.eft import grouped_conv
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 6, 5, 16))
    for k, g in ((3, 8), (1, 16), (3, 4)):
        groups = 16 // g
        kernel = jax.random.normal(jax.random.PRNGKey(k + g),
                                   (k, k, groups, g, g))
        rhs = kernel.transpose(0, 1, 3, 2, 4).reshape(k, k, g, 16)
        want = jax.lax.conv_general_dilated(
            x, rhs, (1, 1), [(k // 2, k // 2)] * 2,
            dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
            feature_group_count=groups)
        got = grouped_conv(x, jnp.broadcast_to(kernel, (3,) + kernel.shape))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_eft_uses_each_examples_bank_and_counts_as_the_code():
    from jcl.models.eft import EFT
    layer = EFT(num_banks=3)
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 5, 5, 32))
    v = layer.init(jax.random.PRNGKey(0), x, jnp.zeros(4, jnp.int32))
    # per layer of C channels: 3x3 within groups of 8, 1x1 within 16
    per_task = 9 * 32 * 8 + 32 + 32 * 16 + 32
    assert sum(a.size for a in jax.tree.leaves(v)) == 3 * per_task
    v = jax.tree.map(lambda a: a * jnp.arange(1, 4).reshape(
        (3,) + (1,) * (a.ndim - 1)), v)     # banks differ
    task = jnp.array([2, 0, 1, 2])
    mixed = layer.apply(v, x, task)
    for t in range(3):
        alone = layer.apply(v, x, jnp.full(4, t))
        np.testing.assert_allclose(mixed[task == t], alone[task == t],
                                   rtol=1e-6, atol=1e-6)
    # ResNet-18: 4,800 conv output channels, 90 EFT parameters each
    net = resnet.ResNet(depth=18, head_width=10, num_tasks=1,
                        reprogram='eft', bn='shared', head='shared')
    shapes = jax.eval_shape(net.init, jax.random.PRNGKey(0),
                            jnp.zeros((1, 32, 32, 3)), jnp.zeros(1, jnp.int32))
    assert sum(int(np.prod(a.shape)) for a in
               jax.tree.leaves(shapes['banks'])) == 4800 * 90


def test_supermask_keeps_the_top_scores_and_passes_gradients_straight():
    from jcl.models.supermask import supermask
    s = jax.random.normal(jax.random.PRNGKey(0), (4, 5, 6))
    for density in (0.5, 0.2, 1.0):
        m = np.asarray(supermask(s, density))
        dropped = int((1 - density) * s.size)
        assert set(np.unique(m)) <= {0.0, 1.0}
        assert m.sum() == s.size - dropped
        kept = np.abs(np.asarray(s))[m == 1]
        gone = np.abs(np.asarray(s))[m == 0]
        assert gone.size == 0 or kept.min() > gone.max()
    w = jax.random.normal(jax.random.PRNGKey(1), s.shape)
    g = jax.grad(lambda s: jnp.sum(w * supermask(s)))(s)
    np.testing.assert_allclose(g, w * jnp.sign(s), rtol=1e-6)


def test_kth_smallest_equals_the_sorted_entry():
    from jcl.models.supermask import kth_smallest
    rng = np.random.RandomState(0)
    cases = [np.abs(rng.normal(size=1000)).astype(np.float32),
             rng.randint(0, 4, 257).astype(np.float32),          # ties
             np.array([0.0, 0.0, 1e-45, 3e38, np.inf], np.float32),
             np.abs(rng.normal(size=(3, 3, 8, 16))).astype(np.float32)]
    for a in cases:
        for k in {0, a.size // 2, a.size - 1}:
            got = kth_smallest(jnp.asarray(a), k)
            assert got == np.sort(a.reshape(-1))[k], (a.size, k)


def test_supsup_conv_is_the_masked_kernel_and_refuses_mixed_batches():
    conv = resnet.TorchConv(8, 3, 1, 1, masks=2)
    x = jax.random.normal(jax.random.PRNGKey(2), (2, 6, 6, 4))
    v = conv.init(jax.random.PRNGKey(0), x, jnp.zeros(2, jnp.int32))
    from jcl.models.conv import conv2d
    from jcl.models.supermask import supermask
    for t in (0, 1):
        mask = supermask(v['banks']['scores'][t])
        want = conv2d(x, v['params']['kernel'] * mask, 1, 1)
        np.testing.assert_allclose(conv.apply(v, x, jnp.full(2, t)), want,
                                   rtol=1e-6, atol=1e-6)
    assert np.isnan(np.asarray(conv.apply(v, x, jnp.array([0, 1])))).all()
