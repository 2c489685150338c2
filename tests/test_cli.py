"""The command-line contract: results layout, resume after a real kill,
refusal to overwrite, and one-line errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jcl import cli

RUN = [sys.executable, '-m', 'jcl', 'run']


def run_main(argv, capsys):
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_all_scenarios_write_the_contract_files(tmp_path, capsys):
    out = tmp_path / 'res'
    code, stdout, _ = run_main(
        ['run', '--protocol', 'split-mnist', '--scenario', 'all',
         '--method', 'none,joint', '--seeds', '2', '--iters', '20',
         '--out', str(out)], capsys)
    assert code == 0
    assert 'task 5/5' in stdout and 'average accuracy' in stdout
    assert (out / 'accuracy.png').stat().st_size > 10_000
    cfg = json.loads((out / 'config.json').read_text())
    assert cfg['iters'] == 20 and cfg['seeds'] == 2
    fixed = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert cfg['task_classes'] == {'0': fixed, '1': fixed}
    # untrained tasks of the printed matrix are marked
    assert '(in parentheses: task j not trained yet)' in stdout
    for scenario in ('task', 'domain', 'class'):
        sub = json.loads((out / scenario / 'config.json').read_text())
        assert sub['scenarios'] == [scenario]
        assert set(sub['hparams']) == {f'{scenario}/none',
                                       f'{scenario}/joint'}
        summary = json.loads((out / scenario / 'summary.json').read_text())
        assert set(summary) == {'none', 'joint'}
        for run in summary.values():
            assert len(run['avg_acc']) == 2
            assert all(0.0 <= a <= 1.0 for a in run['avg_acc'])
            assert np.asarray(run['R']).shape == (2, 5, 5)
        with np.load(out / scenario / 'results.npz') as f:
            assert f['none/loss/loss'].shape == (2, 5, 20)
        assert (out / scenario / 'summary.md').read_text().count('|') > 10
    # Class-IL fine-tuning forgets everything but the last task
    cls = json.loads((out / 'class' / 'summary.json').read_text())
    R = np.asarray(cls['none']['R'])
    assert R[:, -1, :-1].max() < 0.05 and R[:, -1, -1].min() > 0.3


def test_killed_run_resumes_to_identical_numbers(tmp_path):
    args = ['--protocol', 'split-mnist', '--scenario', 'class',
            '--method', 'none', '--seeds', '2', '--iters', '150']
    ref, killed = tmp_path / 'ref', tmp_path / 'killed'
    subprocess.run(RUN + args + ['--out', str(ref)], check=True,
                   capture_output=True, timeout=300)
    p = subprocess.Popen(RUN + args + ['--out', str(killed)],
                         stdout=subprocess.PIPE, text=True)
    seen = []
    for line in p.stdout:
        seen.append(line)
        if 'task 2/5' in line:
            p.kill()  # SIGKILL: no cleanup code runs
            break
    p.wait(timeout=60)
    assert p.returncode != 0, ''.join(seen)
    assert not (killed / 'summary.json').exists()
    again = subprocess.run(RUN + args + ['--out', str(killed)],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert 'resuming after task 2/5' in again.stdout
    a = json.loads((ref / 'summary.json').read_text())['none']
    b = json.loads((killed / 'summary.json').read_text())['none']
    np.testing.assert_array_equal(a['R'], b['R'])
    with np.load(ref / 'results.npz') as f, \
            np.load(killed / 'results.npz') as g:
        np.testing.assert_array_equal(f['none/loss/loss'],
                                      g['none/loss/loss'])
    # a finished folder is never silently overwritten
    before = (killed / 'summary.json').read_text()
    refused = subprocess.run(RUN + args + ['--out', str(killed)],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert refused.stderr.strip().count('\n') == 0
    assert 'already finished' in refused.stderr
    assert (killed / 'summary.json').read_text() == before


BAD = [
    (['--protocol', 'split-emnist'], 'unknown protocol'),
    (['--scenario', 'sideways'], 'unknown scenario'),
    (['--method', 'ewc2'], 'unknown method'),
    (['--lr', '-1'], 'lr=-1: must be > 0'),
    (['--iters', '0'], '--iters must be >= 1'),
    (['--seeds', '0'], '--seeds must be >= 1'),
    (['--set', 'foo.bar=1'], 'no selected method has'),
    (['--set', 'lr'], 'expected NAME=VALUE'),
    (['--set', 'lr=fast'], 'is not a number'),
    (['--devices', '0'], '--devices must be in 1..'),
    (['--num-processes', '2'], 'needs the coordinator address'),
    (['--coordinator', 'h:1', '--num-processes', '2', '--process-id', '2'],
     '--process-id must be in 0..1'),
]


@pytest.mark.parametrize('change,message', BAD)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, change,
                                          message):
    argv = dict(zip(['--protocol', '--scenario', '--method'],
                    ['split-mnist', 'class', 'none']))
    extra = []
    for k, v in zip(change[::2], change[1::2]):
        if k in argv:
            argv[k] = v
        else:
            extra += [k, v]
    if change == ['--set', 'lr']:
        extra = change
    flat = [x for kv in argv.items() for x in kv]
    out = tmp_path / 'o'
    code, _, err = run_main(['run', *flat, *extra, '--out', str(out)],
                            capsys)
    assert code == 2
    assert err.startswith('jcl: error:') and message in err, err
    assert err.strip().count('\n') == 0
    assert not out.exists()  # nothing written for invalid input


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    code, _, err = run_main(
        ['run', '--protocol', 'split-mnist', '--scenario', 'class',
         '--method', 'none', '--iters', '5', '--out',
         str(blocker / 'sub')], capsys)
    assert code == 2
    assert f'cannot write to {blocker / "sub"}: {blocker} is a file' in err
    assert blocker.read_text() == 'x'


def test_different_config_is_refused(tmp_path, capsys):
    out = tmp_path / 'o'
    base = ['run', '--protocol', 'split-mnist', '--scenario', 'class',
            '--method', 'none', '--out', str(out)]
    assert run_main(base + ['--iters', '3'], capsys)[0] == 0
    code, _, err = run_main(base + ['--iters', '4'], capsys)
    assert code == 2 and 'different run' in err
    assert 'differs in iters: 3 -> 4' in err
    assert json.loads((out / 'config.json').read_text())['iters'] == 3
    code, _, _ = run_main(base + ['--iters', '4', '--overwrite'], capsys)
    assert code == 0
    assert json.loads((out / 'config.json').read_text())['iters'] == 4


def test_foreign_folder_is_refused(tmp_path, capsys):
    (tmp_path / 'notes.txt').write_text('mine')
    code, _, err = run_main(
        ['run', '--protocol', 'split-mnist', '--scenario', 'class',
         '--method', 'none', '--iters', '3', '--out', str(tmp_path)],
        capsys)
    assert code == 2 and 'not a jcl results folder' in err
    assert (tmp_path / 'notes.txt').read_text() == 'mine'


def test_corrupt_data_is_one_line(tmp_path):
    (tmp_path / 'mnist.npz').write_bytes(b'PK\x03\x04 truncated')
    env = {**os.environ, 'JCL_DATA_DIR': str(tmp_path)}
    r = subprocess.run(RUN + ['--protocol', 'split-mnist', '--scenario',
                              'class', '--method', 'none', '--iters', '3',
                              '--out', str(tmp_path / 'o')],
                       capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 2
    assert r.stderr.startswith('jcl: error:') and 'Traceback' not in r.stderr
    assert r.stderr.strip().count('\n') == 0
    assert 'mnist.npz: MNIST cache file is corrupt' in r.stderr
    assert 'delete it and run again' in r.stderr
    # an error before training leaves no trace: no results folder, no
    # compilation cache in the data folder
    assert sorted(os.listdir(tmp_path)) == ['mnist.npz']


def test_missing_fashion_data_is_one_line(tmp_path, capsys):
    code, _, err = run_main(
        ['run', '--protocol', 'split-fashion-mnist', '--scenario', 'class',
         '--method', 'none', '--iters', '3', '--data-dir',
         str(tmp_path / 'nowhere'), '--out', str(tmp_path / 'o')], capsys)
    assert code == 2 and err.startswith('jcl: error:')
    assert err.strip().count('\n') == 0
    assert f'Fashion-MNIST folder {tmp_path / "nowhere"} does not ' \
        'exist' in err
    assert 'apt-get install dataset-fashion-mnist' in err
    assert not (tmp_path / 'o').exists()


def test_a_run_refused_after_claiming_its_folder_leaves_none(
        tmp_path, capsys, monkeypatch):
    """An error inside the run before anything is trained removes the
    folder it created; a folder that existed before is left as it was."""
    from jcl.cli import driver
    from jcl.core.errors import ConfigError
    base = ['run', '--protocol', 'split-mnist', '--scenario', 'class',
            '--method', 'none', '--iters', '3']
    done = tmp_path / 'done'
    assert run_main(base + ['--out', str(done)], capsys)[0] == 0
    before = sorted(p.relative_to(done) for p in done.rglob('*'))

    def refuse(cfg, folder, **kw):
        assert os.path.exists(os.path.join(folder, 'config.json'))
        raise ConfigError('refused inside the run')

    monkeypatch.setattr(driver, 'run_config', refuse)
    out = tmp_path / 'new'
    code, stdout, err = run_main(base + ['--out', str(out)], capsys)
    assert code == 2 and 'refused inside the run' in err
    assert not out.exists()
    code, _, err = run_main(base + ['--iters', '4', '--out', str(done),
                                    '--overwrite'], capsys)
    assert code == 2
    assert not (tmp_path / '.done.jcl-overwritten').exists()
    code, _, err = run_main(base + ['--out', str(done)], capsys)
    assert 'already finished' in err
    assert sorted(p.relative_to(done) for p in done.rglob('*')) == before
