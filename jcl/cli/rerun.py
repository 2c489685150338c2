"""Repeating a results folder's run: ``jcl run --from DIR [FLAGS]``.

Every ``config.json`` records the command that made it (``command``: the
``jcl run`` flags that decide its numbers, paths made absolute, without
``--out``, ``--overwrite`` and the flags of devices and processes, which
change no result). ``--from DIR`` (or ``--config DIR/config.json``) puts
that command in front of the flags given with it, so a flag given after
it overrides the recorded one; the results folder is ``DIR`` itself unless
``--out`` says otherwise (an unfinished ``DIR`` resumes, a finished one
needs ``--out`` or ``--overwrite``).

>>> expand_argv(['run', '--iters', '5'])
['run', '--iters', '5']
>>> record(['--protocol', 'split-mnist', '--out', 'x', '--devices', '2',
...         '--set', 'si.c=1'])
['--protocol', 'split-mnist', '--set', 'si.c=1']
"""

import os

from jcl.cli.config import read_json
from jcl.core.errors import ConfigError

# flags that change no number: never recorded, never repeated
_DROP_WITH_VALUE = ('--out', '--devices', '--coordinator', '--num-processes',
                    '--process-id', '--from', '--config')
_DROP_ALONE = ('--overwrite', '--distributed')
_PATHS = ('--data-dir', '--features', '--backbone')


def _pairs(argv):
    """``argv`` as ``(flag, value or None)``; ``--flag=value`` split."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a.startswith('--') and '=' in a:
            flag, value = a.split('=', 1)
            out.append((flag, value))
        elif (a.startswith('--') and a not in _DROP_ALONE
              and a != '--reinit' and i + 1 < len(argv)):
            out.append((a, argv[i + 1]))
            i += 1
        else:
            out.append((a, None))
        i += 1
    return out


def record(run_argv) -> list:
    """The flags of ``jcl run`` that decide a run's numbers, as written to
    ``config.json``."""
    out = []
    for flag, value in _pairs(run_argv):
        if flag in _DROP_WITH_VALUE or flag in _DROP_ALONE:
            continue
        if flag in _PATHS and value is not None:
            value = os.path.abspath(os.path.expanduser(value))
        out += [flag] if value is None else [flag, value]
    return out


def with_scenario(command, scenario) -> list:
    """``command`` with ``--scenario`` set to one scenario (a scenario's
    own folder records this)."""
    out = []
    for flag, value in _pairs(command):
        if flag == '--scenario':
            value = scenario
        out += [flag] if value is None else [flag, value]
    return out


def _source(run_argv):
    """The ``--from``/``--config`` argument and the other flags."""
    found, rest = None, []
    for flag, value in _pairs(run_argv):
        if flag in ('--from', '--config'):
            if found is not None:
                raise ConfigError('give --from or --config once')
            if value is None:
                raise ConfigError(f'{flag} needs a results folder or its '
                                  'config.json')
            found = value
        else:
            rest += [flag] if value is None else [flag, value]
    return found, rest


def saved_command(source) -> tuple:
    """``(command, folder)`` recorded in a results folder (or its
    ``config.json``)."""
    path = (os.path.join(source, 'config.json') if os.path.isdir(source)
            else source)
    if not os.path.exists(path):
        raise ConfigError(f'--from {source}: no config.json there (not a jcl '
                          'results folder)')
    cfg = read_json(path, ConfigError, ' (not a jcl configuration)')
    if not isinstance(cfg, dict) or 'command' not in cfg:
        raise ConfigError(f'{path} records no command (written before jcl '
                          'recorded commands); repeat it with its flags')
    return list(cfg['command']), os.path.dirname(os.path.abspath(path))


def expand_argv(argv) -> list:
    """``['run', '--from', DIR, *flags]`` -> the recorded command, then
    ``flags`` (a ``--grid`` of a name replaces that name's recorded one;
    ``--out DIR`` unless given); other command lines unchanged."""
    if not argv or argv[0] != 'run':
        return list(argv)
    source, rest = _source(argv[1:])
    if source is None:
        return list(argv)
    command, folder = saved_command(source)
    new_grids = {v.split('=', 1)[0] for f, v in _pairs(rest)
                 if f == '--grid' and v}
    kept = []
    for flag, value in _pairs(command):
        if flag == '--grid' and value.split('=', 1)[0] in new_grids:
            continue
        kept += [flag] if value is None else [flag, value]
    if not any(f == '--out' for f, _ in _pairs(rest)):
        rest += ['--out', folder]
    return ['run', *kept, *rest]
