"""experiments/tables.py: published numbers beside finished runs."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'scripts'))
from experiment import load as load_script  # noqa: E402


def load():
    return load_script('tables')


def write(folder, scenario, runs):
    (folder / scenario).mkdir(parents=True)
    (folder / scenario / 'summary.json').write_text(json.dumps(runs))


def run(method, scenario, accs, protocol='split-mnist'):
    n = len(accs)
    mean = sum(accs) / n
    sem = (sum((a - mean) ** 2 for a in accs) / (n - 1)) ** 0.5 / n ** 0.5
    return {method: {'avg_acc': accs, 'avg_acc_mean': mean,
                     'avg_acc_sem': sem, 'scenario': scenario,
                     'protocol': protocol, 'seconds': 60.0,
                     'hp': {'lr': 1e-3, 'si.c': 10.0}}}


def test_table_rows_and_tolerance(tmp_path, capsys):
    tables = load()
    write(tmp_path, 'task', {**run('si', 'task', [0.990, 0.992, 0.994]),
                             **run('online-ewc', 'task', [0.99, 0.99])})
    write(tmp_path, 'domain', run('si', 'domain', [0.70, 0.71, 0.72]))
    single = tmp_path / 'single'  # a one-scenario run has no sub-folder
    single.mkdir()
    (single / 'summary.json').write_text(json.dumps(
        run('xdg', 'task', [0.98, 0.99])))
    assert tables.main([str(tmp_path), str(single)]) == 0
    out = capsys.readouterr().out
    rows = {tuple(c.strip() for c in line.split('|')[1:3]): line
            for line in out.splitlines() if line.startswith('| ')}
    # SI Task-IL: 99.20 vs 99.14 -> within; Domain-IL 71.00 vs 63.77: not
    assert '99.14 ± 0.11' in rows[('si', 'task')]
    assert '| +0.06 | yes |' in rows[('si', 'task')]
    assert '| +7.23 | no |' in rows[('si', 'domain')]
    assert 'si.c=10' in rows[('si', 'task')]
    assert '98.74 ± 0.31' in rows[('xdg', 'task')]
    assert '| – | 99.00 ± 0.00 | – | – |' in rows[('online-ewc', 'task')]
    # Domain-IL allows 3 points, the others 1.5, or 2 SEM if larger
    assert tables.tolerance('domain', 0.1, 0.2) == 3.0
    assert tables.tolerance('task', 0.1, None) == 1.5
    assert tables.tolerance('class', 1.0, 0.2) == 2.0


def test_no_runs_is_an_error(tmp_path, capsys):
    assert load().main([str(tmp_path)]) == 2
    assert 'no finished runs' in capsys.readouterr().err
