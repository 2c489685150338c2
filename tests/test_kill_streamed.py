"""The streamed path (host batches, epochs validated, the best epoch
kept, early stopping) killed with SIGKILL at random moments inside tasks,
then started again: the numbers and the metric log of an uninterrupted
run. The streamed path runs on one device; four host devices change
nothing."""

import csv
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from jcl.training import checkpoint

SCRIPT = os.path.join(os.path.dirname(__file__), 'scripts',
                      'streamed_run.py')


def lines(path):
    with open(path, newline='') as f:
        return [{k: v for k, v in ln.items()
                 if k != 'throughput/steps_per_s'}
                for ln in csv.DictReader(f)]


@pytest.mark.parametrize('devices', [1, 4])
def test_a_killed_streamed_run_resumes_to_the_same_numbers(tmp_path,
                                                           devices):
    env = {**os.environ,
           'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}'}
    whole, killed = tmp_path / 'whole', tmp_path / 'killed'
    subprocess.run([sys.executable, SCRIPT, str(whole)], check=True,
                   env=env, capture_output=True, timeout=600)
    rng, ckpt, inside = random.Random(devices), killed / 'ckpt-0.npz', []
    for task in (1, 3):
        p = subprocess.Popen([sys.executable, SCRIPT, str(killed)], env=env,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        t0 = time.time()
        while checkpoint.position(ckpt) < (task, 1) and p.poll() is None:
            assert time.time() - t0 < 300
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.3))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        assert p.returncode == -signal.SIGKILL, 'the run ended before the kill'
        inside.append(checkpoint.position(ckpt)[1] > 0)
    assert any(inside), 'no kill came inside a task'
    done = subprocess.run([sys.executable, SCRIPT, str(killed)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(whole / 'result.npz') as a, \
            np.load(killed / 'result.npz') as b:
        assert sorted(a) == sorted(b)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert lines(whole / 'logs' / 'steps.csv') == lines(
        killed / 'logs' / 'steps.csv')
