"""Hyperparameter grids: parsing, validation split, one vmapped program,
selection on validation data only."""

import json

import numpy as np
import pytest

from jcl import cli
from jcl.cli.args import parse_grid
from jcl.core import taskdata as data_lib
from jcl.core.errors import ConfigError
from jcl.sweep.grid import grid_points
from jcl.tasks import protocols


def test_holdout_is_disjoint_and_covers_each_task(arrays):
    proto = protocols.class_split('s', arrays, 'class')
    train, valid = data_lib.holdout(proto.train, 0.2, seed=3)
    for t in range(proto.num_tasks):
        a = set(train.index[t, :train.count[t]].tolist())
        b = set(valid.index[t, :valid.count[t]].tolist())
        full = set(proto.train.index[t, :proto.train.count[t]].tolist())
        assert not a & b and a | b == full
        assert abs(len(b) - 0.2 * len(full)) <= 1
    with pytest.raises(ConfigError):
        data_lib.holdout(proto.train, 1.5)


def test_grid_parsing_and_product():
    g = parse_grid(['a=1,2', 'b=1:100:3'])
    np.testing.assert_allclose(g['b'], [1, 10, 100])
    pts = grid_points(g)
    assert len(pts) == 6 and pts[0] == {'a': 1.0, 'b': 1.0}
    for bad in (['a'], ['a=x,y'], ['a=0:10:3'], ['a=1:10:1'],
                ['a=1', 'a=2']):
        with pytest.raises(ConfigError):
            parse_grid(bad)


def test_grid_runs_and_picks_on_validation(tmp_path, capsys):
    """grid.json's numbers are those of the rows' validation matrices
    (read back from result.npz and averaged here by hand), and its best
    point is the one with the highest validation mean."""
    out = tmp_path / 'g'
    code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                     'task', '--method', 'si', '--grid', 'si.c=0,1e4',
                     '--seeds', '2', '--iters', '25', '--out', str(out)])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / 'summary.json').read_text())
    assert set(summary) == {'si[si.c=0]', 'si[si.c=10000]'}
    for run in summary.values():
        assert len(run['avg_acc']) == 2 and len(run['valid_avg_acc']) == 2
    with np.load(out / 'runs' / 'si' / 'result.npz') as f:
        names = [str(n) for n in f['hp_names']]
        c = f['hp_values'][names.index('si.c')]           # [rows]
        R_valid = f['R_valid']                            # [rows, T, T]
    final = np.array([np.mean(r[-1]) for r in R_valid])   # all tasks seen
    by_hand = {v: final[c == v].mean() for v in (0.0, 1e4)}
    grid = json.loads((out / 'grid.json').read_text())['si']
    for point in grid['points']:
        np.testing.assert_allclose(point['valid_mean'],
                                   by_hand[point['hp']['si.c']], rtol=1e-6)
    assert grid['best']['hp']['si.c'] == max(by_hand, key=by_hand.get)
    assert (out / 'grid.png').stat().st_size > 5000
    cfg = json.loads((out / 'config.json').read_text())
    assert cfg['validation'] == 0.1


def test_grid_of_an_unknown_or_invalid_value_is_refused(tmp_path, capsys):
    base = ['run', '--protocol', 'split-mnist', '--scenario', 'task',
            '--method', 'si', '--iters', '3', '--out', str(tmp_path / 'o')]
    assert cli.main(base + ['--grid', 'ewc.lambda=1,2']) == 2
    assert cli.main(base + ['--grid', 'si.c=-1,2']) == 2
    err = capsys.readouterr().err
    assert 'si.c=-1: must be >= 0' in err
