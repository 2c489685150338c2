"""The two tutorials of the documentation run as written (at a few
steps; their defaults are the papers' 2000 iterations per task)."""

import json
import os
import sys

import numpy as np

TUTORIALS = os.path.join(os.path.dirname(__file__), '..', 'docs',
                         'tutorials')
sys.path.insert(0, TUTORIALS)
import new_method  # noqa: E402
import sweep  # noqa: E402


def test_the_new_method_tutorial_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(new_method, 'HIDDEN', (16,))   # a small network
    out, grid = new_method.main(iters=3, seeds=(0,), cli_iters=2,
                                quiet=True, out=str(tmp_path / 'cli'),
                                strengths=(0.1, 10.0))
    printed = capsys.readouterr().out
    assert set(out) == {'mas', 'bir+mas (by hand)', 'bir+mas', 'er+mas'}
    for result in out.values():
        assert result.R.shape == (1, 1, 5, 5)
    # by hand and by name: the same learner, the same numbers
    np.testing.assert_array_equal(out['bir+mas (by hand)'].R,
                                  out['bir+mas'].R)
    assert grid.R.shape == (2, 1, 5, 5) and grid.chosen in range(2)
    assert 'mas.lambda chosen on validation data' in printed
    summary = json.loads((tmp_path / 'cli' / 'summary.json').read_text())
    assert list(summary) == ['mas+bir']


def test_the_sweep_tutorial_runs(tmp_path, capsys):
    result = sweep.main(iters=3, seeds=(0, 1), values=[0.1, 1e4],
                        hidden=(16,), path=str(tmp_path / 'sweep.png'),
                        quiet=True)
    assert result.R_valid.shape == (2, 2, 5, 5)
    table = capsys.readouterr().out
    assert '(chosen)' in table and table.count('\n|') >= 3
    assert (tmp_path / 'sweep.png').stat().st_size > 10_000
