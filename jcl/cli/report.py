"""``jcl report DIR [DIR ...]``: the summaries of results folders.

One folder: its summaries, tables and plots are rebuilt from its
``result.npz`` files (as the run writes them). Several: each is rebuilt,
and one table (``PREFIX.md``, also printed) and one plot (``PREFIX.png``,
a row per scenario) put every folder's methods side by side, each named
``FOLDER: METHOD``.
"""

import os

from jcl.analysis import results
from jcl.cli.config import read_json
from jcl.core.errors import OutputError


def _config(folder):
    path = os.path.join(folder, 'config.json')
    if not os.path.exists(path):
        raise OutputError(f'{folder} is not a jcl results folder (no '
                          'config.json)')
    return read_json(path, OutputError)


def _names(folders):
    """Short distinct names: the folders' last path parts, as many as it
    takes to tell them apart."""
    parts = [os.path.abspath(f).rstrip(os.sep).split(os.sep)
             for f in folders]
    for n in range(1, max(map(len, parts)) + 1):
        names = ['/'.join(p[-n:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [os.path.abspath(f) for f in folders]


def rebuild(folder) -> dict:
    """``{scenario: summary}`` of a folder's finished methods, its files
    rebuilt."""
    from jcl.cli import driver
    cfg = _config(folder)
    out = {}
    for s in cfg['scenarios']:
        done = driver.finished_results(folder, cfg, s)
        if done:
            out[s] = (cfg, driver.write_scenario(folder, cfg, s, done))
    return out


def report(folders, prefix='report', log=print) -> int:
    """Rebuilds every folder; with several, writes ``PREFIX.md`` and
    ``PREFIX.png`` comparing them."""
    got = [rebuild(f) for f in folders]   # every folder checked first
    for f, g in zip(folders, got):
        log(f'jcl: rebuilt the summaries in {f}' if g else
            f'jcl: {f} has no finished method yet')
    if len(folders) == 1:
        return 0
    by_scenario, lines = {}, [
        '| folder | protocol | scenario | method | seeds | avg acc (%) | '
        'BWT (%) |', '|---|---|---|---|---|---|---|']
    for name, g in zip(_names(folders), got):
        for scenario, (cfg, summary) in g.items():
            for method, s in summary.items():
                by_scenario.setdefault(scenario, {})[f'{name}: {method}'] = s
                bwt = 100 * sum(s['bwt']) / len(s['bwt'])
                lines.append(
                    f"| {name} | {cfg['protocol']} | {scenario} | {method} | "
                    f"{len(s['avg_acc'])} | {100 * s['avg_acc_mean']:.2f} ± "
                    f"{100 * s['avg_acc_sem']:.2f} | {bwt:.2f} |")
    if not by_scenario:
        raise OutputError('none of these folders has a finished method')
    text = '\n'.join(lines) + '\n'
    try:
        with open(f'{prefix}.md', 'w') as f:
            f.write(text)
        results.plot_curves(by_scenario, f'{prefix}.png',
                            title=', '.join(_names(folders)))
    except OSError as e:
        raise OutputError(f'cannot write {prefix}.md/.png: '
                          f'{e.strerror or e}') from None
    log(text + f'jcl: wrote {prefix}.md and {prefix}.png')
    return 0
