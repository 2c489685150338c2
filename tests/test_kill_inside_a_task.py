"""A run killed with SIGKILL in the middle of a task, then started again
with the same command, ends with exactly the numbers of an uninterrupted
run: it resumes from the checkpoint written inside the task (the carry,
the task's draws, the position, the curves so far), on one device and on
four. Its metric logs (CSV, TensorBoard) hold what an uninterrupted run's
hold: what the killed process logged after its last checkpoint is logged
again, once."""

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

RUN = [sys.executable, '-m', 'jcl', 'run', '--protocol', 'split-mnist',
       '--scenario', 'class', '--method', 'gr', '--seeds', '3',
       '--iters', '100', '--hidden', '64', '--checkpoint-every', '10',
       '--log', 'csv,tensorboard', '--log-every', '5']


def result(folder, method):
    with np.load(folder / 'runs' / method / 'result.npz') as f:
        return {k: f[k] for k in ('R', 'loss/loss')}


@pytest.mark.parametrize('devices', [1, 4])
def test_a_kill_inside_a_task_resumes_to_the_same_numbers(tmp_path,
                                                          devices):
    env = {**os.environ,
           'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}'}
    whole, killed = tmp_path / 'whole', tmp_path / 'killed'
    subprocess.run(RUN + ['--out', str(whole)], check=True, env=env,
                   capture_output=True, timeout=900)
    rng = random.Random(devices)
    ckpt = killed / 'runs' / 'gr' / 'ckpt-0.npz'
    # kill gr inside its second task (after a random number of in-task
    # checkpoints), then inside a later one
    inside = []
    for task, wait in ((1, rng.uniform(0, 0.1)), (3, rng.uniform(0, 0.1))):
        p = subprocess.Popen(RUN + ['--out', str(killed)], env=env,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        t0 = time.time()
        while checkpoint.position(ckpt) < (task, 20) and p.poll() is None:
            assert time.time() - t0 < 600
            time.sleep(0.05)
        time.sleep(wait)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        assert p.returncode == -signal.SIGKILL, 'the run ended before the kill'
        assert checkpoint.latest(str(ckpt))
        inside.append(checkpoint.position(ckpt)[1] > 0)
    assert any(inside), 'no kill came inside a task'
    done = subprocess.run(RUN + ['--out', str(killed)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    if inside[-1]:
        assert 'resuming after step' in done.stdout, done.stdout[-2000:]
    for m in ('gr',):
        a, b = result(whole, m), result(killed, m)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f'{m} {k}')
    assert not list((killed / 'runs' / 'gr').glob('ckpt-*'))
    for name, clock in (('steps.csv', 'throughput/steps_per_s'),
                        ('tasks.csv', 'seconds')):
        a, b = (logged(f / 'runs' / 'gr' / 'logs' / name, clock)
                for f in (whole, killed))
        assert a == b, name
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )
    for row in ('seed0', 'seed2'):
        curves = []
        for f in (whole, killed):
            ea = EventAccumulator(str(f / 'runs' / 'gr' / 'logs' /
                                      'tensorboard' / row),
                                  size_guidance={'scalars': 0})
            ea.Reload()
            curves.append([(e.step, e.value) for tag in (
                'loss/total', 'accuracy/average') for e in ea.Scalars(tag)])
        assert curves[0] == curves[1] and len(curves[0]) == 100 + 5, row


def logged(path, clock):
    """A CSV log's lines in order, without the wall-clock column."""
    with open(path, newline='') as f:
        return [{k: v for k, v in ln.items() if k != clock}
                for ln in csv.DictReader(f)]
