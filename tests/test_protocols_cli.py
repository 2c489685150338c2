"""Every protocol runs end to end through the command line (tiny runs)."""

import json
import pickle

import numpy as np

from jcl import cli


def summary(folder):
    return json.loads((folder / 'summary.json').read_text())


def test_split_fashion_mnist_real_data(tmp_path, capsys):
    out = tmp_path / 'f'
    assert cli.main(['run', '--protocol', 'split-fashion-mnist',
                     '--scenario', 'task', '--method', 'none',
                     '--iters', '30', '--out', str(out)]) == 0
    s = summary(out)['none']
    assert np.asarray(s['R']).shape == (1, 5, 5)
    assert s['R'][0][0][0] > 0.8  # first task learned after 30 steps


def test_permuted_mnist_domain(tmp_path, capsys):
    out = tmp_path / 'p'
    assert cli.main(['run', '--protocol', 'permuted-mnist', '--scenario',
                     'domain', '--method', 'none', '--permutations', '2',
                     '--iters', '30', '--seeds', '2', '--out',
                     str(out)]) == 0
    s = summary(out)['none']
    assert np.asarray(s['R']).shape == (2, 2, 2)
    cfg = json.loads((out / 'config.json').read_text())
    assert cfg['num_tasks'] == 2 and cfg['hidden'] == [1000, 1000]


def _cifar10_stand_in(root, per_batch=20):
    """Official python-version layout, tiny: every class in every file."""
    folder = root / 'cifar-10-batches-py'
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
        labels = [i % 10 for i in range(per_batch)]
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        batch = {b'data': data, b'labels': labels}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return root


def test_split_cifar10_from_a_local_folder(tmp_path, capsys):
    data = _cifar10_stand_in(tmp_path / 'cifar')
    out = tmp_path / 'c'
    assert cli.main(['run', '--protocol', 'split-cifar10', '--scenario',
                     'class', '--method', 'none', '--iters', '3',
                     '--batch', '8', '--data-dir', str(data), '--out',
                     str(out)]) == 0
    s = summary(out)['none']
    assert np.asarray(s['R']).shape == (1, 5, 5)


def test_cifar_without_data_is_one_line(tmp_path, capsys):
    code = cli.main(['run', '--protocol', 'split-cifar100', '--scenario',
                     'class', '--method', 'none', '--iters', '3',
                     '--out', str(tmp_path / 'o')])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith('jcl: error:')
    assert 'CIFAR' in err or 'cifar' in err
