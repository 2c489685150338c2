"""experiments/bir_replay_curves.py: which runs Fig. 4 makes and how it
reads them back (``jcl run`` replaced by a recorder)."""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'scripts'))
from experiment import load  # noqa: E402


def recorded(quantity_runs, tmp_path):
    mod = load('bir_replay_curves')
    calls = []

    def fake_run(folder, args, method, *flags):
        calls.append((os.path.basename(folder), method, flags))
        point = {'avg_acc_mean': 0.5, 'avg_acc_sem': 0.01,
                 'avg_acc': [0.5]}
        return {method: point, **{f'{method}[{method}.replay_size={q:g}]':
                                  point for q in mod.QUANTITY}}
    mod.jcl_run = fake_run
    args = argparse.Namespace(
        protocol='split-mnist', scenario='class', methods='bir', seeds=1,
        reinit='off', parts='quantity', quantity_runs=quantity_runs,
        out=str(tmp_path), extra=[])
    return mod, mod.curves(args), calls


def test_the_quantity_grid_is_one_command_with_a_grid(tmp_path):
    """One ``jcl run --grid`` (whose points share one vmapped program:
    tests/test_sweep.py), not one run per quantity."""
    mod, report, calls = recorded(False, tmp_path)
    assert len(calls) == 1
    name, method, flags = calls[0]
    assert (name, method) == ('quantity-bir', 'bir')
    assert flags[:2] == ('--grid', 'bir.replay_size=1,2,4,8,16,32,64,128,'
                         '256')
    assert sorted(report['bir']['quantity']) == list(mod.QUANTITY)


def test_quantity_runs_make_one_run_per_value(tmp_path):
    mod, report, calls = recorded(True, tmp_path)
    assert [c[0] for c in calls] == [f'quantity-bir-{q}'
                                     for q in mod.QUANTITY]
    for (_, _, flags), q in zip(calls, mod.QUANTITY):
        assert flags == ('--set', f'bir.replay_size={q}', '--validation',
                         '0')
    assert report['bir']['quantity'][256]['mean'] == 50.0
