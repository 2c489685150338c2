"""The results folder: its layout, and the policy that protects results.

A folder holds one run configuration (``config.json`` with its hash). A
finished folder is refused unless ``--overwrite`` is given; a folder of
a different configuration is refused, naming the settings that differ;
an unfinished one of the same configuration is resumed.

Layout: ``config.json``; with several scenarios one sub-folder each
(holding its own ``config.json``); in a scenario folder ``runs/METHOD/``
holds each method's ``result.npz`` and, while running, its checkpoints.
"""

import json
import os
import shutil

from jcl.cli.config import read_json, scenario_config
from jcl.cli.identity import config_diff, config_hash
from jcl.core.errors import OutputError


def scenario_folder(folder, cfg, scenario):
    return (folder if len(cfg['scenarios']) == 1
            else os.path.join(folder, scenario))


def run_folder(folder, cfg, scenario, method):
    return os.path.join(scenario_folder(folder, cfg, scenario), 'runs',
                        method.replace('+', '_plus_'))


def result_paths(folder, cfg):
    return [os.path.join(run_folder(folder, cfg, s, m), 'result.npz')
            for s in cfg['scenarios'] for m in cfg['methods']]


def _write_config(path, cfg):
    with open(path, 'w') as f:
        json.dump({**cfg, 'hash': config_hash(cfg)}, f, indent=1)


def prepare_folder(folder, cfg, overwrite) -> bool:
    """Creates or checks the results folder; returns True when resuming.

    Never silently overwrites: a finished folder needs ``--overwrite``, a
    folder of a different configuration is refused. With ``overwrite`` the
    old folder is set aside until the run ends (:func:`release`).
    """
    cfg_path = os.path.join(folder, 'config.json')
    if os.path.exists(cfg_path):
        old = read_json(cfg_path, OutputError,
                        '; use another --out or --overwrite')
        finished = all(os.path.exists(p) for p in result_paths(folder, old))
        if overwrite:
            _set_aside(folder)
        elif old.get('hash') != config_hash(cfg):
            diff = config_diff(old, cfg)
            raise OutputError(
                f'{folder} holds a different run (config hash '
                f'{old.get("hash")}{"; differs in " + diff if diff else ""}'
                '); use another --out or --overwrite')
        elif finished:
            raise OutputError(f'{folder} is already finished; pass '
                              '--overwrite to run it again')
        else:
            return True
    elif os.path.isdir(folder) and os.listdir(folder):
        raise OutputError(f'{folder} exists and is not a jcl results '
                          'folder; choose an empty or new --out')
    try:
        os.makedirs(folder, exist_ok=True)
        _write_config(cfg_path, cfg)
        if len(cfg['scenarios']) > 1:
            for s in cfg['scenarios']:
                sub = scenario_folder(folder, cfg, s)
                os.makedirs(sub, exist_ok=True)
                _write_config(os.path.join(sub, 'config.json'),
                              scenario_config(cfg, s))
    except OSError as e:
        raise OutputError(f'cannot write to {folder}: '
                          f'{e.strerror or e}') from None
    return False


def check_writable(folder):
    """Raises :class:`OutputError` if ``folder`` (or the nearest existing
    folder above it) cannot be written; creates nothing."""
    probe = os.path.abspath(folder)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if os.path.exists(probe) and not os.path.isdir(probe):
        raise OutputError(f'cannot write to {folder}: {probe} is a file')
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f'cannot write to {folder}: permission denied')



def _aside(folder):
    head, tail = os.path.split(os.path.abspath(folder))
    return os.path.join(head, f'.{tail}.jcl-overwritten')


def _set_aside(folder):
    aside = _aside(folder)
    try:
        if os.path.exists(aside):
            shutil.rmtree(aside)
        os.rename(folder, aside)
    except OSError as e:
        raise OutputError(f'cannot replace {folder}: '
                          f'{e.strerror or e}') from None


def release(folder, *, fresh, ok):
    """Ends the claim of :func:`prepare_folder`. ``ok``: the folder set
    aside by ``--overwrite`` is deleted. Otherwise (the run was refused)
    the folder is put back as it was: the one set aside returns, and a
    folder this run created (``fresh``) is removed while it holds nothing
    but configurations."""
    aside = _aside(folder)
    if ok:
        shutil.rmtree(aside, ignore_errors=True)
    elif os.path.exists(aside):
        shutil.rmtree(folder, ignore_errors=True)
        os.rename(aside, folder)
    elif fresh:
        for _, _, files in os.walk(folder):
            if any(f != 'config.json' for f in files):
                return
        shutil.rmtree(folder, ignore_errors=True)
