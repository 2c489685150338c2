"""``jcl run --protocol offline-sequence``: the CLR sequence end to end
on its first two tasks (MNIST, Fashion-MNIST), a seeded torchvision-layout
backbone, capped steps; and its one-line errors."""

import os
import sys

import numpy as np
import pytest

from jcl import cli
from jcl.models import torchvision_import as tvi

sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'models'))
import seeded_resnet  # noqa: E402

QUICK = ['--protocol', 'offline-sequence', '--scenario', 'task',
         '--tasks', '2', '--iters', '4', '--epochs', '2', '--seeds', '1']


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp('w') / 'resnet18.npz'
    np.savez(path, **seeded_resnet.state_dict(tvi.torchvision_keys(18)))
    return str(path)


def test_clr_sequence_runs_and_keeps_task_one(tmp_path, capsys, weights):
    out = tmp_path / 'run'
    code = cli.main(['run', *QUICK, '--method', 'clr', '--backbone',
                     weights, '--out', str(out)])
    text = capsys.readouterr()
    assert code == 0, text.err
    with np.load(out / 'runs' / 'clr' / 'result.npz') as f:
        R = f['R'][0]
        assert R.shape == (2, 2)
        assert R[1, 0] == R[0, 0]       # CLR forgets nothing
        assert f['extra/steps'].tolist() == [[4, 4]]   # the --iters cap
        assert f['extra/best_epoch'].tolist() == [[0, 0]]
    assert os.path.exists(out / 'summary.md')


@pytest.mark.parametrize('extra,message', [
    (['--backbone', '/nonexistent/w.npz'], 'does not exist'),
    (['--tasks', '9'], '--tasks must be in 1..8'),
    (['--scenario', 'class'], 'task-incremental'),
])
def test_bad_sequence_input_is_one_line(tmp_path, capsys, weights, extra,
                                        message):
    argv = ['run', *QUICK, '--method', 'clr', '--backbone', weights,
            *extra, '--out', str(tmp_path / 'o')]
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2 and message in err and 'Traceback' not in err


def test_backbone_options_need_a_sequence(tmp_path, capsys, weights):
    for extra, message in ((['--backbone', weights], 'has no backbone'),
                           (['--tasks', '2'], 'applies to task sequences')):
        code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                         'task', '--method', 'none', *extra, '--out',
                         str(tmp_path / 'o')])
        err = capsys.readouterr().err
        assert code == 2 and message in err, err
    code = cli.main(['run', '--protocol', 'split-mnist', '--method', 'clr',
                     '--scenario', 'task', '--out', str(tmp_path / 'o2')])
    assert code == 2 and 'offline-sequence' in capsys.readouterr().err


def test_image_folder_sequence_runs_from_a_task_list(tmp_path, capsys,
                                                     weights):
    """The paper's sequence from folders (here a generated miniature of
    three tasks with 3, 2 and 4 classes), one command."""
    from jcl.datasets.image_folders import write_example_tasks
    task_list = write_example_tasks(tmp_path / 'data', class_counts=(3, 2, 4))
    out = tmp_path / 'run'
    code = cli.main(['run', '--protocol', 'image-folders', '--scenario',
                     'task', '--method', 'clr', '--data-dir', str(task_list),
                     '--image-size', '32', '--epochs', '2', '--batch', '4',
                     '--seeds', '1', '--backbone', weights, '--out',
                     str(out)])
    text = capsys.readouterr()
    assert code == 0, text.err
    with np.load(out / 'runs' / 'clr' / 'result.npz') as f:
        R = f['R'][0]
    assert R.shape == (3, 3)
    assert R[2, 0] == R[0, 0] and R[2, 1] == R[1, 1]
    code = cli.main(['run', '--protocol', 'image-folders', '--scenario',
                     'task', '--method', 'clr', '--backbone', weights,
                     '--out', str(tmp_path / 'x')])
    assert code == 2 and '--data-dir' in capsys.readouterr().err


def _evil_pickle(path):
    """A PyTorch-style zip whose pickle asks for ``posix.system``."""
    import pickle
    import zipfile

    class Evil:
        def __reduce__(self):
            return (os.system, ('true',))

    with zipfile.ZipFile(path, 'w') as z:
        z.writestr('archive/data.pkl', pickle.dumps(Evil(), protocol=2))
        z.writestr('archive/version', '3\n')


@pytest.mark.parametrize('kind', ['random bytes', 'pickle', 'not a resnet'])
def test_a_refused_backbone_leaves_no_folder(tmp_path, capsys, weights,
                                             kind):
    """Refused before anything is written; the same --out then takes the
    good file as a new run."""
    bad = tmp_path / 'bad.pth'
    if kind == 'random bytes':
        bad.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == 'pickle':
        _evil_pickle(bad)
    else:
        bad = tmp_path / 'bad.npz'
        np.savez(bad, **{'fc.weight': np.zeros((2, 3), np.float32)})
    out = tmp_path / 'o'
    code = cli.main(['run', *QUICK, '--method', 'clr', '--backbone',
                     str(bad), '--out', str(out)])
    text = capsys.readouterr()
    assert code == 2 and 'Traceback' not in text.err, text.err
    assert 'writing' not in text.out and not out.exists()
    code = cli.main(['run', *QUICK, '--method', 'clr', '--iters', '1',
                     '--backbone', weights, '--out', str(out)])
    assert code == 0, capsys.readouterr().err
