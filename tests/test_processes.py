"""Two local processes of ``jax.distributed`` (CPU collectives on the
loopback address) give the accuracy matrices of one process up to float
rounding (a test image here and there; in this configuration exactly),
and a run whose process 1 is killed inside a task stops and resumes from
the in-task checkpoint to the numbers of the uninterrupted two-process
run, bit for bit."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np

from jcl.training import checkpoint

RUN = [sys.executable, '-m', 'jcl', 'run']
ARGS = ['--protocol', 'split-mnist', '--scenario', 'class',
        '--method', 'none,gr', '--seeds', '3', '--iters', '40',
        '--hidden', '64', '--checkpoint-every', '8',
        '--log', 'csv,tensorboard']
ENV = {**os.environ, 'JCL_HEARTBEAT_TIMEOUT': '10'}


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start(out, port, pid, **kw):
    return subprocess.Popen(
        RUN + ARGS + ['--out', str(out), '--coordinator',
                      f'127.0.0.1:{port}', '--num-processes', '2',
                      '--process-id', str(pid)],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, **kw)


def both(out):
    port = free_port()
    procs = [start(out, port, i) for i in (0, 1)]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    return logs


def R(folder):
    s = json.loads((folder / 'summary.json').read_text())
    return {m: np.asarray(s[m]['R']) for m in s}


def test_two_processes_equal_one_process_and_resume_after_a_kill(
        tmp_path):
    one, two, killed = (tmp_path / n for n in ('one', 'two', 'killed'))
    subprocess.run(RUN + ARGS + ['--out', str(one)], check=True,
                   capture_output=True, timeout=600, env=ENV)
    logs = both(two)
    assert '2 devices' in logs[0]
    assert logs[1].count('task 1/5') == 0  # one process prints
    # one process writes the metric logs: one event file per row, each
    # with its samples (gathered from both processes' rows)
    tb = two / 'runs' / 'gr' / 'logs' / 'tensorboard'
    assert sorted(d.name for d in tb.iterdir()) == ['seed0', 'seed1',
                                                   'seed2']
    assert [len(list(d.glob('events.out.tfevents.*')))
            for d in tb.iterdir()] == [1, 1, 1]
    steps = (two / 'runs' / 'gr' / 'logs' / 'steps.csv').read_text()
    assert len(steps.splitlines()) == 1 + 3 * 5 * 40 // 10
    ref = R(one)
    assert set(ref) == {'none', 'gr'} and ref['gr'].shape == (3, 5, 5)
    two_R = R(two)
    for m, r in two_R.items():   # at most 3 of a task's >= 1,874 images
        assert np.abs(r - ref[m]).max() <= 3 / 1874, m

    # kill process 1 inside gr's third task, after an in-task checkpoint:
    # process 0 stops by itself
    port = free_port()
    p0, p1 = start(killed, port, 0), start(killed, port, 1)
    ckpt, seen, t0 = killed / 'runs' / 'gr' / 'ckpt-0.npz', [], time.time()
    while checkpoint.position(ckpt) < (2, 8) and p0.poll() is None:
        assert time.time() - t0 < 300
        time.sleep(0.05)
    p1.send_signal(signal.SIGKILL)
    t0 = time.time()
    rest = p0.communicate(timeout=300)[0]
    assert p0.returncode != 0, ''.join(seen) + rest
    assert time.time() - t0 < 240
    p1.wait(timeout=60)
    assert not (killed / 'summary.json').exists()
    logs = both(killed)
    assert 'resuming after step' in logs[0], logs[0][-2000:]
    assert 'of task 3' in logs[0]
    assert '[class/none] finished earlier, kept' in logs[0]
    for m, r in R(killed).items():
        np.testing.assert_array_equal(r, two_R[m], err_msg=m)
