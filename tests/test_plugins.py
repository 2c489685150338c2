"""A method written outside the package (docs/tutorials/mas.py) becomes a
command-line citizen: registered from Python, loaded by ``--plugin``, and
by an installed package's entry point."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import jcl
from jcl import cli
from jcl.core.errors import ConfigError
from jcl.methods import catalog

TUTORIALS = os.path.join(os.path.dirname(__file__), '..', 'docs',
                         'tutorials')
sys.path.insert(0, TUTORIALS)
import mas as mas_plugin  # noqa: E402  (registers 'mas')


def test_a_registered_method_composes_with_bir_on_the_command_line(
        tmp_path, capsys):
    out = tmp_path / 'run'
    code = cli.main(['run', '--plugin', 'mas', '--protocol', 'split-mnist',
                     '--scenario', 'class', '--method', 'mas+bir',
                     '--grid', 'mas.lambda=0,10', '--iters', '4', '--seeds',
                     '1', '--hidden', '16', '--validation', '0', '--out',
                     str(out)])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / 'summary.json').read_text())
    assert set(summary) == {'mas+bir[mas.lambda=0]', 'mas+bir[mas.lambda=10]'}
    with np.load(out / 'results.npz') as f:
        zero = f['mas+bir[mas.lambda=0]/loss/mas/penalty']
        ten = f['mas+bir[mas.lambda=10]/loss/mas/penalty']
        replay = f['mas+bir[mas.lambda=10]/loss/bir/replay/replay']
    assert (zero == 0).all() and (ten[:, 0] == 0).all()
    assert (ten[:, 1:, 1:] > 0).all() and (replay[:, 1:] > 0).all()
    cfg = json.loads((out / 'config.json').read_text())
    assert cfg['plugins'] == ['mas']
    assert cli.main(['methods']) == 0
    assert 'memory aware synapses' in capsys.readouterr().out


def test_bad_plugins_and_registrations_are_one_line(tmp_path, capsys):
    code = cli.main(['run', '--plugin', 'no_such_module_here', '--protocol',
                     'split-mnist', '--scenario', 'class', '--method', 'si',
                     '--out', str(tmp_path / 'x')])
    err = capsys.readouterr().err
    assert code == 2 and 'no_such_module_here' in err
    assert 'Traceback' not in err and not (tmp_path / 'x').exists()
    with pytest.raises(ConfigError, match='exists already'):
        jcl.register_method(catalog.entry('si'))
    with pytest.raises(ConfigError, match='exists already'):
        jcl.register_method(mas_plugin.ENTRY)
    with pytest.raises(ConfigError, match='not a method name'):
        jcl.register_method(mas_plugin.ENTRY._replace(name='a+b'))
    with pytest.raises(ConfigError, match='MethodEntry'):
        jcl.register_method({'name': 'x'})


def test_an_installed_entry_point_needs_no_flag(tmp_path):
    """A package that declares the entry-point group ``jcl.methods`` (here
    its installed metadata, as pip writes it) is found without
    ``--plugin``."""
    site = tmp_path / 'site'
    info = site / 'jcl_mas-0.1.dist-info'
    info.mkdir(parents=True)
    (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: jcl-mas\n'
                                   'Version: 0.1\n')
    (info / 'entry_points.txt').write_text('[jcl.methods]\nmas = mas\n')
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(
        [str(site), os.path.abspath(TUTORIALS),
         os.environ.get('PYTHONPATH', '')])}
    out = tmp_path / 'run'
    got = subprocess.run(
        [sys.executable, '-m', 'jcl', 'run', '--protocol', 'split-mnist',
         '--scenario', 'task', '--method', 'mas+bir', '--iters', '3',
         '--hidden', '16', '--out', str(out)], env=env, capture_output=True,
        text=True)
    assert got.returncode == 0, got.stderr
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['mas+bir']['hp']['mas.lambda'] == 1.0
    listed = subprocess.run([sys.executable, '-m', 'jcl', 'methods'],
                            env=env, capture_output=True, text=True)
    assert 'mas ' in listed.stdout and 'a plug-in' in listed.stdout
