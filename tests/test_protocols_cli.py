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
    R = np.asarray(s['R'])
    assert R.shape == (1, 5, 5)
    # 4 test images per task (2 per class): accuracies are quarters
    np.testing.assert_allclose(R * 4, np.round(R * 4), atol=1e-5)


def test_shuffled_orders_per_seed_match_single_seed_runs(tmp_path):
    base = ['run', '--protocol', 'split-mnist', '--scenario', 'class',
            '--method', 'none', '--iters', '20', '--class-order',
            'shuffled']
    assert cli.main(base + ['--seeds', '3', '--first-seed', '0', '--out',
                            str(tmp_path / 'all')]) == 0
    cfg = json.loads((tmp_path / 'all' / 'config.json').read_text())
    assert cfg['task_classes']['0'] == [[0, 1], [2, 3], [4, 5], [6, 7],
                                        [8, 9]]  # the NMI code's seed 0
    assert cfg['task_classes']['2'] == [[3, 1], [5, 6], [0, 2], [7, 4],
                                        [9, 8]]
    R = np.asarray(summary(tmp_path / 'all')['none']['R'])
    for seed in (0, 2):  # the stacked per-seed tables = one seed alone
        out = tmp_path / f's{seed}'
        assert cli.main(base + ['--seeds', '1', '--first-seed', str(seed),
                                '--out', str(out)]) == 0
        alone = np.asarray(summary(out)['none']['R'])[0]
        np.testing.assert_allclose(R[seed], alone, atol=2e-3)
        # Class-IL fine-tuning: only the last task's pair is known
        assert alone[-1, -1] > 0.6 and alone[-1, :-1].max() < 0.05


def test_cifar_without_data_is_one_line(tmp_path, capsys):
    code = cli.main(['run', '--protocol', 'split-cifar100', '--scenario',
                     'class', '--method', 'none', '--iters', '3',
                     '--out', str(tmp_path / 'o')])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith('jcl: error:')
    assert err.strip().count('\n') == 0
    assert 'cifar100 is not available' in err and '--data-dir' in err
    assert not (tmp_path / 'o').exists()


def test_buffer_methods_on_a_split_cifar100_stand_in(tmp_path, capsys):
    """ER, A-GEM and iCaRL through split CIFAR-100's path (10 tasks of 10
    classes, the NMI MLP) on a generated stand-in: every method runs
    every task and iCaRL keeps its exemplars (100 classes x 3 images)."""
    import pickle
    folder = tmp_path / 'data' / 'cifar-100-python'
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name, n in (('train', 3), ('test', 1)):
        y = np.repeat(np.arange(100), n)
        batch = {b'data': rng.integers(0, 256, (len(y), 3072),
                                       dtype=np.uint8),
                 b'fine_labels': y.tolist(),
                 b'coarse_labels': (y // 5).tolist()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    out = tmp_path / 'o'
    assert cli.main(['run', '--protocol', 'split-cifar100', '--scenario',
                     'class', '--method', 'er,agem,icarl', '--iters', '2',
                     '--batch', '8', '--hidden', '32,32', '--set',
                     'er.per_class=2', '--set', 'agem.per_class=2', '--set',
                     'icarl.per_class=2', '--data-dir',
                     str(tmp_path / 'data'), '--out', str(out)]) == 0, \
        capsys.readouterr().err
    s = summary(out)
    for m in ('er', 'agem', 'icarl'):
        assert np.asarray(s[m]['R']).shape == (1, 10, 10)
