"""Checkpoints store leaves by name: round trip, clear mismatch errors,
and a BatchNorm run killed mid-sequence that resumes bit for bit."""

import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from jcl.core.errors import DataError
from jcl.core.records import Snapshot
from jcl.training import checkpoint

SCRIPT = os.path.join(os.path.dirname(__file__), 'scripts',
                      'bn_sequence.py')


def carry():
    return {'params': {'Dense_0': {'kernel': jnp.ones((3, 2)),
                                   'bias': jnp.zeros(2)}},
            'mstate': {'lwf': Snapshot({'w': jnp.arange(4.0)},
                                       {'gates': [jnp.ones((2, 3))]})},
            'key': jnp.array([0, 7], jnp.uint32)}


def test_round_trip_by_name(tmp_path):
    path = tmp_path / 'c.npz'
    checkpoint.save(path, carry(), tasks_done=3, R=np.eye(2))
    names = sorted(checkpoint.read(path))
    assert 'carry/mstate/lwf/params/w' in names
    assert 'carry/mstate/lwf/model_state/gates/0' in names
    assert 'extra/tasks_done' in names
    tree, extra = checkpoint.load(path, carry())
    np.testing.assert_array_equal(tree['mstate']['lwf'].params['w'],
                                  np.arange(4.0))
    assert tree['key'].dtype == np.uint32 and int(extra['tasks_done']) == 3
    # a single entry, e.g. one bank, read back by its name
    assert checkpoint.read(path)['carry/params/Dense_0/kernel'].shape == \
        (3, 2)


@pytest.mark.parametrize('change,message', [
    (lambda c: c['params'].update(extra=jnp.zeros(1)),
     'params/extra: missing in the file'),
    (lambda c: c['params'].pop('Dense_0'),
     'params/Dense_0/bias: in the file, not in this run'),
    (lambda c: c['params']['Dense_0'].update(kernel=jnp.ones((4, 2))),
     'params/Dense_0/kernel: shape (3, 2) in the file, (4, 2) here'),
    (lambda c: c.update(key=jnp.array([0, 7], jnp.int32)),
     'key: dtype uint32 in the file, int32 here'),
])
def test_a_changed_structure_is_a_clear_error(tmp_path, change, message):
    path = tmp_path / 'c.npz'
    checkpoint.save(path, carry())
    like = carry()
    change(like)
    with pytest.raises(DataError, match='does not match this run') as e:
        checkpoint.load(path, like)
    assert message in str(e.value) and 'delete it' in str(e.value)


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / 'c.npz'
    checkpoint.save(path, carry())
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match='is unreadable'):
        checkpoint.load(path, carry())


def test_killed_batchnorm_run_resumes_bit_identical(tmp_path):
    ref, killed = tmp_path / 'ref', tmp_path / 'killed'
    subprocess.run([sys.executable, SCRIPT, str(ref)], check=True,
                   capture_output=True, timeout=600)
    p = subprocess.Popen([sys.executable, SCRIPT, str(killed)],
                         stdout=subprocess.PIPE, text=True)
    for line in p.stdout:
        if 'task 2/5' in line:
            p.kill()  # SIGKILL: no cleanup runs
            break
    p.wait(timeout=60)
    assert p.returncode != 0 and not (killed / 'result.npz').exists()
    again = subprocess.run([sys.executable, SCRIPT, str(killed)],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert 'resuming after task 2/5' in again.stdout
    with np.load(ref / 'result.npz') as a, \
            np.load(killed / 'result.npz') as b:
        assert set(a) == set(b)
        assert any(k.startswith('state/model_state/batch_stats')
                   for k in a)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
