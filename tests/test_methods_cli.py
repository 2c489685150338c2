"""Method names and compositions through the command line."""

import json

import numpy as np

from jcl import cli, recipes


def test_compositions_run_end_to_end(tmp_path, capsys):
    out = tmp_path / 'm'
    code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                     'task', '--method', 'ewc+xdg,gr-distill+si,separate',
                     '--set', 'ewc.lambda=100', '--iters', '15',
                     '--out', str(out)])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / 'summary.json').read_text())
    assert set(summary) == {'ewc+xdg', 'gr-distill+si', 'separate'}
    assert summary['ewc+xdg']['hp']['ewc.lambda'] == 100.0
    assert summary['ewc+xdg']['hp']['xdg.proportion'] == 0.9
    with np.load(out / 'results.npz') as f:
        terms = {k.split('/loss/')[1] for k in f
                 if k.startswith('gr-distill+si/loss/')}
    assert {'ce/loss', 'gr-distill/replay', 'gr-distill/gen_current',
            'si/penalty'} <= terms
    for run in summary.values():
        assert all(np.isfinite(run['avg_acc']))


def test_task_il_only_methods_are_refused_elsewhere(tmp_path, capsys):
    for method in ('xdg', 'separate', 'ewc+xdg'):
        code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                         'class', '--method', method, '--iters', '3',
                         '--out', str(tmp_path / method)])
        err = capsys.readouterr().err
        assert code == 2
        assert 'defined for task-incremental learning only' in err
        assert not (tmp_path / method).exists()


def test_defaults_follow_protocol_and_scenario():
    d = recipes.default_hparams(['ewc', 'si'], lr=1e-3,
                                protocol='split-mnist', scenario='domain')
    assert d['ewc.lambda'] == 1e10 and d['si.c'] == 5e4
    d = recipes.default_hparams(['ewc'], lr=1e-4,
                                protocol='permuted-mnist', scenario='domain')
    assert d['ewc.lambda'] == 100.0
