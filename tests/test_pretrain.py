"""Pre-training and internal replay's front end on CIFAR stand-ins (no
CIFAR can be downloaded here): ``jcl pretrain`` on a generated CIFAR-10,
its weights read back by name, and ``jcl run --features`` learning a
generated split CIFAR-100 on the frozen conv features with BI-R."""

import hashlib
import json
import pickle

import jax
import numpy as np
import pytest

from jcl import cli
from jcl.core.errors import DataError
from jcl.weights import front_end as pretrain


def _rows(x):
    """HWC images -> the official [N, 3072] rows (R plane, G, B)."""
    return x.transpose(0, 3, 1, 2).reshape(len(x), 3072)


def _images(rng, y):
    """Class c brightens channel c % 3 in row band c // 3 (learnable)."""
    x = rng.integers(0, 60, size=(len(y), 32, 32, 3), dtype=np.uint8)
    for i, c in enumerate(y):
        band = (c // 3) % 10
        x[i, 3 * band:3 * band + 3, :, c % 3] = 250
    return x


def cifar10(root, per_batch=40):
    folder = root / 'cifar-10-batches-py'
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']
    for name in names:
        y = rng.integers(0, 10, size=per_batch)
        batch = {b'data': _rows(_images(rng, y)), b'labels': y.tolist()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


def cifar100(root, per_class=(3, 1)):
    folder = root / 'cifar-100-python'
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name, n in zip(('train', 'test'), per_class):
        y = np.repeat(np.arange(100), n)
        batch = {b'data': _rows(_images(rng, y)), b'fine_labels': y.tolist(),
                 b'coarse_labels': (y // 5).tolist()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv('JCL_CIFAR_DIR', raising=False)
    root = tmp_path / 'data'
    cifar10(root)
    cifar100(root)
    return root


def test_pretrain_then_learn_cifar100_on_frozen_features(tmp_path, data_dir,
                                                         capsys):
    weights = tmp_path / 'conv.npz'
    code = cli.main(['pretrain', '--data', 'cifar10', '--epochs', '2',
                     '--batch', '16', '--data-dir', str(data_dir),
                     '--out', str(weights)])
    assert code == 0, capsys.readouterr().err
    model, params, state, meta = pretrain.load_front_end(str(weights))
    assert str(meta['network']) == 'bir-conv'
    assert str(meta['data']) == 'cifar10'
    assert tuple(meta['input_shape']) == (32, 32, 3)
    # the five conv layers as saved: channels 16..256, BatchNorm state kept
    names = jax.tree_util.tree_flatten_with_path(params)[0]
    assert any('256' in str(v.shape) for _, v in names)
    assert jax.tree.leaves(state)  # BatchNorm statistics are model state
    # features: 32 -> 32, 16, 8, 4, 2 (stride 2 from layer 2) x 256
    x = np.zeros((3, 32, 32, 3), np.uint8)
    f = pretrain.feature_arrays({'train_x': x, 'test_x': x[:1]}, model,
                                params, state)
    assert f['train_x'].shape == (3, 2 * 2 * 256)
    assert f['train_x'].dtype == np.float32
    # a refusal: the weights file exists
    assert cli.main(['pretrain', '--data', 'cifar10', '--epochs', '1',
                     '--data-dir', str(data_dir), '--out',
                     str(weights)]) == 2
    assert 'exists' in capsys.readouterr().err

    out = tmp_path / 'run'
    code = cli.main(['run', '--protocol', 'split-cifar100', '--scenario',
                     'class', '--method', 'bir', '--iters', '3', '--batch',
                     '8', '--hidden', '32,32', '--data-dir', str(data_dir),
                     '--features', str(weights), '--out', str(out)])
    err = capsys.readouterr()
    assert code == 0, err.err
    assert 'features of' in err.out
    cfg = json.loads((out / 'config.json').read_text())
    assert len(cfg['features_sha256']) == 64
    R = np.asarray(json.loads((out / 'summary.json').read_text())['bir']['R'])
    assert R.shape == (1, 10, 10) and np.all((0 <= R) & (R <= 1))
    with np.load(out / 'results.npz') as f:  # features are unbounded: the
        for k in f.files:                    # generator's loss stays finite
            if '/loss/' in k:
                assert np.all(np.isfinite(f[k])), k


def test_feature_protocols_reconstruct_with_the_squared_error():
    from jcl.methods import catalog as method_catalog
    from jcl.methods.assemble import build_learner
    from jcl.tasks import catalog, protocols
    rng = np.random.default_rng(0)
    arrays = {'train_x': rng.normal(size=(40, 6)).astype(np.float32) * 3,
              'train_y': np.repeat(np.arange(10), 4),
              'test_x': rng.normal(size=(10, 6)).astype(np.float32),
              'test_y': np.arange(10)}
    proto = catalog.load_protocol('split-cifar100', 'class', arrays=arrays,
                                  features=True)
    assert proto.inputs == 'features'
    pix = protocols.class_split('s', {**arrays, 'train_x': np.zeros(
        (40, 2, 3), np.uint8), 'test_x': np.zeros((10, 2, 3), np.uint8)},
        'class')
    assert pix.inputs == 'pixels'
    for method in ('bir', 'gr'):
        parts = method_catalog.parse(method)
        hp = method_catalog.default_hparams(parts, lr=1e-3)
        model = build_learner(
            proto, catalog.protocol_spec('split-cifar100'), parts,
            hidden=(8,), iters=1, batch=4).make_model(hp)
        recon = model.views['reconstruction']
        out, x = np.array([[1.0, -2.0]]), np.array([[3.0, 1.0]])
        np.testing.assert_allclose(recon(out, x), [0.5 * (4 + 9)])


def test_bad_weights_files_are_one_line(tmp_path, data_dir, capsys):
    base = ['run', '--protocol', 'split-cifar100', '--scenario', 'class',
            '--method', 'bir', '--iters', '2', '--data-dir', str(data_dir)]
    bad = tmp_path / 'bad.npz'
    bad.write_bytes(b'not a zip file')
    for path, message in ((tmp_path / 'missing.npz',
                           'cannot read the weights file'),
                          (bad, 'unreadable')):
        out = tmp_path / f'out-{path.stem}'
        assert cli.main(base + ['--features', str(path), '--out',
                                str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count('\n') == 0 and message in err, err
        assert not out.exists()


# ---- ResNet backbones for CLR: a torchvision state dict (+ sidecar) ----

@pytest.fixture(scope='module')
def letters(tmp_path_factory):
    """A small rendered letter set (2 train, 1 test image per class)."""
    from jcl.datasets import load_glyph_letters
    cache = tmp_path_factory.mktemp('glyphs')
    return load_glyph_letters(str(cache), n_train=52, n_test=26, size=32)


@pytest.fixture(scope='module')
def resnet_run(letters, tmp_path_factory):
    """One tiny ``jcl pretrain --network resnet18`` run through the CLI
    (the only ResNet-18 training compile of this file)."""
    from jcl import datasets
    from jcl.cli.args import parser
    out = tmp_path_factory.mktemp('resnet') / 'letters.npz'
    lines = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets, 'load_glyph_letters',
                   lambda data_dir=None: letters)
        args = parser().parse_args(
            ['pretrain', '--network', 'resnet18', '--data',
             'glyph-letters', '--epochs', '1', '--batch', '8',
             '--out', str(out)])
        from jcl.cli import pretrain as cli_pretrain
        code = cli_pretrain.run(args, log=lines.append)
    return code, out, lines


def test_resnet_pretrain_saves_a_torchvision_state_dict(resnet_run,
                                                        letters):
    from jcl.models import torchvision_import as tvi
    from jcl.weights.statedict import load_state_dict
    code, out, lines = resnet_run
    assert code == 0
    assert 'test accuracy' in lines[-1] and str(out) in lines[-1]
    sd = load_state_dict(out)
    assert len(sd) == 122 and list(sd)[:2] == ['conv1.weight', 'bn1.weight']
    assert list(sd)[-2:] == ['fc.weight', 'fc.bias']
    assert tvi.check_state_dict(sd, 18) == 26   # the same check as .pth
    assert sd['layer1.0.conv1.weight'].shape == (64, 64, 3, 3)    # OIHW
    assert sd['bn1.num_batches_tracked'].dtype == np.int64
    meta = pretrain.read_meta(out)
    assert pretrain.meta_path(out) == str(out)[:-len('npz')] + 'json'

    assert (meta['network'], meta['data'], meta['depth']) == (
        'resnet18', 'glyph-letters', 18)
    assert meta['augment'] == 'crop' and meta['epochs'] == 1
    assert [c['epoch'] for c in meta['curve']] == [1]
    assert meta['weights_sha256'] == hashlib.sha256(
        out.read_bytes()).hexdigest()
    # the weights as read back give the recorded test accuracy
    model = pretrain.network('resnet18', num_classes=26,
                             input_shape=(32, 32, 1))
    params, state = model.init(jax.random.PRNGKey(1))
    v = tvi.load_backbone({'params': params, **state}, sd, 18, head=True)
    out_, _ = model.apply(v['params'], {'batch_stats': v['batch_stats']},
                          pretrain.imagenet_prepare(letters['test_x']),
                          np.zeros(26, np.int32), train=False)
    acc = np.mean(np.argmax(out_['logits'], -1) == letters['test_y'])
    assert abs(acc - meta['test_accuracy']) <= 1 / 26 + 1e-6
    with pytest.raises(DataError, match='ResNet backbone'):
        pretrain.load_front_end(str(out))


def test_to_torchvision_round_trip():
    from jcl.models import torchvision_import as tvi
    model = pretrain.resnet_classifier(18, 7, (32, 32))
    params, state = model.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    state = jax.tree.map(   # statistics that are not 0 and 1
        lambda a: rng.uniform(0.5, 1.5, a.shape).astype(np.float32), state)
    v = {'params': params, **state}
    sd = tvi.to_torchvision(v, 18)
    assert tvi.check_state_dict(sd, 18) == 7
    assert list(sd) == sorted(sd, key=list(sd).index)
    keys = list(sd)
    assert keys.index('layer2.0.bn2.num_batches_tracked') < keys.index(
        'layer2.0.downsample.0.weight') < keys.index('layer2.1.conv1.weight')
    other = model.init(jax.random.PRNGKey(1))
    back = tvi.load_backbone({'params': other[0], **other[1]}, sd, 18,
                             head=True)
    same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), v, back)
    assert all(jax.tree.leaves(same))
    x = jax.random.normal(jax.random.PRNGKey(2), (2, 32, 32, 3))
    task = np.zeros(2, np.int32)
    a, _ = model.apply(params, state, x, task, train=False)
    b, _ = model.apply(back['params'], {'batch_stats': back['batch_stats']},
                       x, task, train=False)
    np.testing.assert_array_equal(a['logits'], b['logits'])


@pytest.mark.parametrize('argv, message', [
    (['--network', 'vgg16', '--data', 'glyph-letters'], 'unknown network'),
    (['--network', 'resnet18', '--data', 'svhn'], 'unknown data set'),
    (['--network', 'resnet18', '--data', 'mnist'], 'not trained on mnist'),
    (['--data', 'glyph-letters'], 'is for --network resnet18'),
    (['--data', 'mnist', '--optimizer', 'sgd'], 'trains with adam'),
    (['--network', 'resnet18', '--data', 'glyph-letters', '--epochs', '0'],
     'must be >= 1'),
])
def test_pretrain_refusals_are_one_line(tmp_path, capsys, argv, message):
    out = tmp_path / 'w.npz'
    assert cli.main(['pretrain', *argv, '--out', str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0 and message in err, err
    assert not out.exists()


def test_pretrain_output_refusals(tmp_path, capsys):
    base = ['pretrain', '--network', 'resnet18', '--data', 'glyph-letters',
            '--out']
    not_a_folder = tmp_path / 'file'
    not_a_folder.write_text('')
    assert cli.main(base + [str(not_a_folder / 'w.npz')]) == 2
    assert 'cannot write' in capsys.readouterr().err
    for existing in ('w.npz', 'w.json'):    # the weights or the sidecar
        (tmp_path / existing).write_text('')
        assert cli.main(base + [str(tmp_path / 'w.npz')]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count('\n') == 0 and existing in err and \
            '--overwrite' in err, err
        (tmp_path / existing).unlink()
