"""ResNets in torchvision's layout, CLR layers and per-task banks:
against PyTorch (a stored fixture), against closed forms, and against
the torchvision parameter counts."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import seeded_resnet  # tests/models, on the path as the test's folder

from jcl.core.errors import DataError
from jcl.models import batchnorm, reprogram, resnet
from jcl.models import torchvision_import as tvi

FIXTURE = os.path.join(os.path.dirname(__file__), '..', 'fixtures',
                       'resnet_torch.npz')


def _init(net, n=2, size=64):
    x = jnp.zeros((n, size, size, 3))
    return jax.jit(net.init)(jax.random.PRNGKey(0), x,
                             jnp.zeros(n, jnp.int32))


def _zeros(net, size=32):
    """Variables of ``net`` as zeros, from shapes alone (no compile)."""
    shapes = jax.eval_shape(net.init, jax.random.PRNGKey(0),
                            jnp.zeros((1, size, size, 3)),
                            jnp.zeros(1, jnp.int32))
    return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)


def _x():
    return jnp.asarray(seeded_resnet.inputs().transpose(0, 2, 3, 1))


def _apply(net, v, x, task, train, what='logits'):
    fn = jax.jit(lambda v, x, t: net.apply(
        v, x, t, train=train, mutable=['batch_stats'] if train else []))
    out, new = fn(v, x, task)
    return out[what], new


def _close(actual, desired, tol=1e-5):
    """Equal to ``tol`` of the output's scale: max |a - b| <= tol max |b|
    (float32 sums over 18-50 layers reassociate differently in XLA and
    PyTorch; logits here reach about 100)."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.shape == desired.shape
    err = np.abs(actual - desired).max() / np.abs(desired).max()
    assert err <= tol, f'relative error {err:.2e} > {tol:.0e}'


def _count(tree):
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


@pytest.mark.parametrize('depth', [18, 50])
def test_forward_matches_torch(depth):
    ref = np.load(FIXTURE)
    net = resnet.ResNet(depth=depth, head_width=1000)
    sd = seeded_resnet.state_dict(tvi.torchvision_keys(depth))
    v = tvi.load_backbone(_init(net), sd, depth, head=True)
    task = jnp.zeros(2, jnp.int32)
    ev, _ = _apply(net, v, _x(), task, False)
    _close(ev, ref[f'r{depth}_eval'])
    tr, new = _apply(net, v, _x(), task, True)
    # training mode normalises with batch statistics, over 8 values per
    # channel in the last stage (2 images of 2x2): rounding differences
    # grow there, hence 1e-4 (measured: 8e-5 for ResNet-50, 1e-5 for 18)
    _close(tr, ref[f'r{depth}_train'], 1e-4)
    last = ('layer4_1', 'bn2') if depth == 18 else ('layer4_2', 'bn3')
    stats = new['batch_stats'][last[0]][last[1]]
    _close(stats['mean'], ref[f'r{depth}_train_mean'], 1e-4)
    _close(stats['var'], ref[f'r{depth}_train_var'], 1e-4)


def _clr_variables(v):
    """The fixture's depthwise kernels written into bank 0."""
    banks = v['banks']
    names = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(banks)[0]:
        keys = [p.key for p in path]
        if len(keys) > 1 and keys[-2].endswith('_clr'):
            conv = tvi._torch_name(tuple(keys[:-2]) + (keys[-2][:-4],
                                                       'kernel'))
            names[conv[:-len('.weight')]] = (keys, leaf.shape[-1])
    kernels = seeded_resnet.clr_kernels({n: c for n, (_, c) in names.items()})
    for name, (keys, _) in names.items():
        node = banks
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = jnp.asarray(
            kernels[name][:, 0].transpose(1, 2, 0))[None]
    return v


def test_clr_forward_matches_torch():
    ref = np.load(FIXTURE)
    net = resnet.ResNet(depth=18, head_width=1000, reprogram='clr',
                        bn='per-task', head='per-task')
    sd = seeded_resnet.state_dict(tvi.torchvision_keys(18))
    v = _clr_variables(tvi.load_backbone(_init(net), sd, 18, head=True))
    task = jnp.zeros(2, jnp.int32)
    ev, _ = _apply(net, v, _x(), task, False)
    _close(ev, ref['r18_clr_eval'])
    tr, _ = _apply(net, v, _x(), task, True)
    _close(tr, ref['r18_clr_train'], 1e-4)


@pytest.mark.parametrize('full', [False, True])
def test_clr_at_init_is_the_backbone_bit_for_bit(full):
    sd = seeded_resnet.state_dict(tvi.torchvision_keys(18))
    plain = resnet.ResNet(depth=18, head_width=1000)
    vp = tvi.load_backbone(_init(plain), sd, 18, head=True)
    clr = resnet.ResNet(depth=18, head_width=1000, num_tasks=3,
                        reprogram='clr-full' if full else 'clr',
                        bn='per-task', head='per-task', dw_impl='shift')
    vc = tvi.load_backbone(_init(clr), sd, 18, head=True)
    x, task = _x(), jnp.array([2, 0])
    # the backbone's output (the head's input) is identical bit for bit
    a, _ = _apply(plain, vp, x, jnp.zeros(2, jnp.int32), False, 'features')
    b, _ = _apply(clr, vc, x, task, False, 'features')
    assert np.array_equal(np.asarray(a), np.asarray(b))
    # the logits too up to the head's GEMM shape ([T, D, W] vs [D, W])
    a, _ = _apply(plain, vp, x, jnp.zeros(2, jnp.int32), False)
    b, _ = _apply(clr, vc, x, task, False)
    _close(b.reshape(2, 3, 1000)[jnp.arange(2), task], a, 1e-6)
    ta, _ = _apply(plain, vp, x, jnp.zeros(2, jnp.int32), True, 'features')
    tb, _ = _apply(clr, vc, x, jnp.zeros(2, jnp.int32), True, 'features')
    _close(tb, ta, 1e-5)


@pytest.mark.parametrize('depth,mode,kernels,total', [
    (18, 'clr', 35_136, 11_689_512), (18, 'clr-full', 43_200, 11_689_512),
    (50, 'clr', 34_560, 25_557_032)])
def test_parameter_counts_match_torchvision(depth, mode, kernels, total):
    net = resnet.ResNet(depth=depth, head_width=1000, reprogram=mode,
                        num_tasks=1, bn='shared', head='shared')
    v = jax.eval_shape(net.init, jax.random.PRNGKey(0),
                       jnp.zeros((1, 32, 32, 3)), jnp.zeros(1, jnp.int32))
    assert _count(v['params']) == total
    assert _count(v['banks']) == kernels
    assert sum(int(np.prod(s)) for s in tvi.torchvision_keys(depth)
               .values() if len(s) != 1 or True) >= total


def test_depthwise_forms_agree_with_gradients():
    key = jax.random.PRNGKey(3)
    x = jax.random.normal(key, (3, 6, 5, 4))
    for k in (jax.random.normal(jax.random.PRNGKey(4), (3, 3, 4)),
              jax.random.normal(jax.random.PRNGKey(5), (3, 3, 3, 4))):
        outs = [reprogram.depthwise3x3(x, k, impl) for impl in ('shift',
                                                                'lax')]
        np.testing.assert_allclose(*outs, atol=1e-5)

        def loss(k, x, impl):
            return jnp.sum(jnp.sin(reprogram.depthwise3x3(x, k, impl)))
        ga = jax.grad(loss, (0, 1))(k, x, 'shift')
        gb = jax.grad(loss, (0, 1))(k, x, 'lax')
        for a, b in zip(ga, gb):
            np.testing.assert_allclose(a, b, atol=1e-4)


def test_depthwise_matches_a_hand_computed_cross_correlation():
    x = np.arange(2 * 3 * 3 * 1, dtype=np.float32).reshape(2, 3, 3, 1)
    k = np.zeros((3, 3, 1), np.float32)
    k[0, 1, 0] = 2.0                  # the pixel above, doubled
    y = np.asarray(reprogram.depthwise3x3(jnp.asarray(x), jnp.asarray(k),
                                          'shift'))
    want = np.zeros_like(x)
    want[:, 1:] = 2 * x[:, :-1]
    np.testing.assert_array_equal(y, want)


def test_banked_batchnorm_equals_one_batch_per_task():
    bn = batchnorm.TorchBatchNorm(num_banks=3)
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 4, 4, 5)) * 3 + 1
    task = jnp.array([0, 2, 0, 2, 2, 0])
    v = bn.init(jax.random.PRNGKey(1), x, task, train=False)
    v = {'banks': {'scale': jnp.arange(15.).reshape(3, 5) / 7 + 0.5,
                   'bias': jnp.arange(15.).reshape(3, 5) / 11},
         'batch_stats': v['batch_stats']}
    y, new = bn.apply(v, x, task, train=True, mutable=['batch_stats'])
    for t in (0, 2):
        sel = np.asarray(task) == t
        xt = np.asarray(x)[sel]
        m, var = xt.mean((0, 1, 2)), xt.var((0, 1, 2))
        want = (xt - m) / np.sqrt(var + 1e-5) * np.asarray(
            v['banks']['scale'][t]) + np.asarray(v['banks']['bias'][t])
        np.testing.assert_allclose(np.asarray(y)[sel], want, rtol=1e-4,
                                   atol=1e-4)
        n = xt.size / 5
        np.testing.assert_allclose(new['batch_stats']['mean'][t], 0.1 * m,
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(new['batch_stats']['var'][t],
                                   0.9 + 0.1 * var * n / (n - 1), rtol=1e-5)
    assert np.array_equal(new['batch_stats']['mean'][1], np.zeros(5))
    assert np.array_equal(new['batch_stats']['var'][1], np.ones(5))


def test_import_errors_name_the_tensor():
    sd = seeded_resnet.state_dict(tvi.torchvision_keys(18))
    net = resnet.ResNet(depth=18)
    v = _zeros(net)
    broken = dict(sd)
    del broken['layer3.1.bn2.running_var']
    with pytest.raises(DataError, match='missing layer3.1.bn2.running_var'):
        tvi.load_backbone(v, broken, 18)
    broken = dict(sd, **{'conv1.weight': np.zeros((64, 3, 3, 3))})
    with pytest.raises(DataError, match=r'conv1.weight is \(64, 3, 3, 3\)'):
        tvi.load_backbone(v, broken, 18)
    with pytest.raises(DataError, match='not a torchvision ResNet-50'):
        tvi.load_backbone(v, sd, 50)
    small = resnet.ResNet(depth=18, stem='small')
    with pytest.raises(DataError, match='conv1.weight has shape'):
        tvi.load_backbone(_zeros(small), sd, 18)
