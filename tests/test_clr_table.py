"""experiments/clr_table.py: the CLR paper's analyses of finished runs."""

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'scripts'))
from experiment import load as load_script  # noqa: E402


def load():
    return load_script('clr_table')


def folder(root, name, results, protocol='offline-sequence'):
    """A results folder as `jcl run` leaves it: config.json and one
    result.npz per method (R [seeds, T, T], task seconds, steps)."""
    path = root / name
    for method, (R, seconds, steps) in results.items():
        (path / 'runs' / method).mkdir(parents=True)
        np.savez(path / 'runs' / method / 'result.npz', R=R,
                 seconds=seconds, **{'extra/steps': steps})
    (path / 'config.json').write_text(json.dumps(
        {'protocol': protocol, 'methods': list(results),
         'num_tasks': 2}))
    return path


def test_rows_by_hand_across_folders(tmp_path):
    clr_table = load()
    # two seeds, two tasks; rows: after task 1, after task 2
    R_sgd = np.array([[[0.9, 0.1], [0.5, 0.8]],
                      [[0.7, 0.1], [0.6, 0.9]]])
    R_clr = np.array([[[0.9, 0.1], [0.9, 0.8]],
                      [[0.8, 0.1], [0.8, 0.7]]])
    steps = np.array([[10, 10], [10, 10]])   # per seed, per task
    a = folder(tmp_path, 'a', {'sgd': (R_sgd, np.array([4.0, 6.0]),
                                       steps)})
    b = folder(tmp_path, 'b', {'clr': (R_clr, np.array([1.0, 2.0]),
                                       steps)})
    cfg, rows, curves, base = clr_table.analyse(str(a), str(b))
    by = {r['method']: r for r in rows}
    assert set(by) == {'sgd', 'clr'} and cfg['protocol'] == 'offline-sequence'
    # average of the last row, mean over seeds: (0.65 + 0.75) / 2
    assert by['sgd']['acc'] == pytest.approx(70.0)
    # standard error of the seeds' averages 0.65, 0.75: sd 0.05 * sqrt(2)
    # (ddof 1), over sqrt(2)
    assert by['sgd']['sem'] == pytest.approx(5.0)
    # forgetting: task 1's best minus its final, mean over seeds
    assert by['sgd']['forgetting'] == pytest.approx(100 * (0.4 + 0.1) / 2)
    assert by['clr']['forgetting'] == pytest.approx(0.0)
    # seconds over the mean number of steps; relative to SGD's
    assert base == pytest.approx(10.0 / 20)
    assert by['clr']['per_step'] / base == pytest.approx(0.3)
    np.testing.assert_allclose(by['sgd']['task1'], [80.0, 55.0])
    np.testing.assert_array_equal(curves['clr'], R_clr[:, :, 0])
    # CLR's bank: kernels, BatchNorm's affine parameters, the head
    assert by['clr']['extra'] == 35_136 + 9_600 + 5_130
    assert by['sgd']['extra'] == 5_130          # the head alone


def test_writes_table_and_figure(tmp_path):
    clr_table = load()
    R = np.array([[[0.9, 0.1], [0.5, 0.8]]])
    a = folder(tmp_path, 'a', {'sgd': (R, np.array([1.0, 1.0]),
                                       np.array([[5, 5]]))})
    out = tmp_path / 'table'
    out.mkdir()
    clr_table.write(str(out), *clr_table.analyse(str(a)))
    text = (out / 'clr.md').read_text()
    assert '| sgd | 1 | 65.00 ± 0.00 | 40.00 |' in text
    assert (out / 'clr.png').stat().st_size > 0


def test_refuses_mixed_protocols(tmp_path):
    clr_table = load()
    R = np.zeros((1, 2, 2))
    one = (R, np.ones(2), np.ones((1, 2)))
    a = folder(tmp_path, 'a', {'sgd': one})
    b = folder(tmp_path, 'b', {'clr': one}, protocol='image-folders')
    with pytest.raises(SystemExit, match='protocol image-folders'):
        clr_table.analyse(str(a), str(b))


def test_replay_memory_counts_the_stored_examples():
    clr_table = load()
    cfg = {'protocol': 'offline-sequence', 'num_tasks': 8, 'hparams': {
        'task/er': {'er.per_class': 100.0},
        'task/derpp': {'derpp.budget': 8000.0}, 'task/clr': {}}}
    # 100 per class, 10 classes, 8 tasks of grey 32x32 bytes
    assert clr_table.replay_memory(cfg, 'er') == (8000, 8000 * 1024)
    # DER++ keeps each example's 80 logits (float32) beside it
    assert clr_table.replay_memory(cfg, 'derpp') == (8000,
                                                     8000 * (1024 + 320))
    assert clr_table.replay_memory(cfg, 'clr') == (0, 0)
