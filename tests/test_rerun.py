"""``jcl run --from DIR`` / ``--config FILE`` repeat a folder's run (its
recorded command, overridable flag by flag), and ``jcl report DIR DIR``
puts folders side by side."""

import json

import numpy as np
import pytest

from jcl import cli

RUN = ['run', '--protocol', 'split-mnist', '--scenario', 'task,class',
       '--method', 'none,si', '--seeds', '2', '--iters', '12',
       '--hidden', '32', '--set', 'si.c=0.5']


def main(argv, capsys):
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def R(folder, scenario, method):
    with np.load(folder / scenario / 'runs' / method / 'result.npz') as f:
        return f['R']


@pytest.fixture(scope='module')
def first(tmp_path_factory):
    out = tmp_path_factory.mktemp('rerun') / 'a'
    assert cli.main([*RUN, '--out', str(out), '--devices', '1']) == 0
    return out


def test_a_folder_records_the_command_that_decides_its_numbers(first):
    cfg = json.loads((first / 'config.json').read_text())
    assert cfg['command'] == RUN[1:]      # no --out, no --devices
    sub = json.loads((first / 'class' / 'config.json').read_text())
    assert sub['command'][sub['command'].index('--scenario') + 1] == 'class'


def test_from_repeats_the_run_bit_for_bit(first, tmp_path, capsys):
    again = tmp_path / 'b'
    code, _, err = main(['run', '--from', str(first), '--out', str(again)],
                        capsys)
    assert code == 0, err
    for s in ('task', 'class'):
        for m in ('none', 'si'):
            np.testing.assert_array_equal(R(again, s, m), R(first, s, m))
    a, b = (json.loads((f / 'config.json').read_text())
            for f in (first, again))
    assert a == b


def test_flags_after_config_override_the_recorded_ones(first, tmp_path,
                                                       capsys):
    out = tmp_path / 'c'
    code, _, err = main(['run', '--config', str(first / 'class' /
                                                 'config.json'),
                         '--iters', '6', '--set', 'si.c=2', '--out',
                         str(out)], capsys)
    assert code == 0, err
    cfg = json.loads((out / 'config.json').read_text())
    assert cfg['scenarios'] == ['class'] and cfg['iters'] == 6
    assert cfg['hparams']['class/si']['si.c'] == 2.0
    assert cfg['seeds'] == 2 and cfg['hidden'] == [32]


def test_from_a_finished_folder_without_out_is_refused(first, capsys):
    code, _, err = main(['run', '--from', str(first)], capsys)
    assert code == 2 and 'already finished' in err


@pytest.mark.parametrize('argv,message', [
    (['--from', '/nonexistent/dir'], 'no config.json there'),
    (['--from'], 'needs a results folder'),
])
def test_bad_from_is_one_line(argv, message, capsys):
    code, _, err = main(['run', *argv], capsys)
    assert code == 2 and message in err and err.count('\n') == 1, err


def test_report_of_several_folders_is_one_table_and_plot(first, tmp_path,
                                                         capsys):
    other = tmp_path / 'short'
    assert main(['run', '--from', str(first), '--scenario', 'class',
                 '--iters', '3', '--out', str(other)], capsys)[0] == 0
    prefix = tmp_path / 'cmp'
    code, out, err = main(['report', str(first), str(other), '--out',
                           str(prefix)], capsys)
    assert code == 0, err
    table = (tmp_path / 'cmp.md').read_text()
    assert table in out
    rows = [line for line in table.splitlines()[2:] if line]
    assert len(rows) == 2 * 2 + 2       # a: 2 scenarios x 2, short: 2
    assert '| short | split-mnist | class | si | 2 |' in table
    assert (tmp_path / 'cmp.png').stat().st_size > 10_000
    code, _, err = main(['report', str(first), str(tmp_path / 'none')],
                        capsys)
    assert code == 2 and 'not a jcl results folder' in err
