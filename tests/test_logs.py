"""Metric logs: the event files TensorBoard's own reader loads, the CSV
files, the windows' means, resuming, W&B offline, the command line."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
)

from jcl.core.errors import ConfigError
from jcl.logs import MetricLog, parse_kinds
from jcl.logs.event_file import crc32c
from jcl.logs.writers import TensorBoardWriter


def read_tb(folder):
    ea = EventAccumulator(str(folder), size_guidance={'scalars': 0,
                                                      'images': 0})
    ea.Reload()
    return ea


def read_csv(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def test_crc32c_against_published_check_values():
    # RFC 3720 B.4: 32 bytes of zeros, of 0xff, and ascending bytes
    assert crc32c(b'') == 0
    assert crc32c(b'123456789') == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b'\xff' * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E


def test_tensorboard_reads_scalars_images_and_drops_what_a_restart_redoes(
        tmp_path):
    w = TensorBoardWriter(str(tmp_path))
    for step in (10, 20, 30):
        w.scalars('seed0', step, {'loss/total': step / 10, 'lr': 1e-3},
                  'step')
    pixels = (np.arange(12 * 20) % 256).astype(np.uint8).reshape(12, 20)
    w.image('seed0', 30, 'samples', pixels)
    w.close()
    # a resumed run: forget what came after step 10, log 20 and 30 again
    w = TensorBoardWriter(str(tmp_path))
    w.purge(['seed0'], 10)
    for step in (20, 30, 40):
        w.scalars('seed0', step, {'loss/total': -step, 'lr': 1e-3}, 'step')
    w.close()
    ea = read_tb(tmp_path / 'seed0')
    got = [(e.step, e.value) for e in ea.Scalars('loss/total')]
    assert got == [(10, 1.0), (20, -20.0), (30, -30.0), (40, -40.0)]
    assert [e.value for e in ea.Scalars('lr')] == pytest.approx([1e-3] * 4)
    assert ea.Images('samples') == []   # the image at step 30: dropped


def test_tensorboard_image_round_trip(tmp_path):
    import io

    from PIL import Image
    w = TensorBoardWriter(str(tmp_path))
    pixels = (np.arange(12 * 20) % 256).astype(np.uint8).reshape(12, 20)
    w.image('a', 5, 'samples', pixels)
    w.close()
    (img,) = read_tb(tmp_path / 'a').Images('samples')
    assert (img.step, img.height, img.width) == (5, 12, 20)
    back = np.asarray(Image.open(io.BytesIO(img.encoded_image_string)))
    np.testing.assert_array_equal(back, pixels)


def test_windows_are_means_over_every_steps_across_chunks(tmp_path):
    """Hand-computed: every=4, a task of 10 steps in chunks of 3: points
    at the run's steps 4, 8 and the task's end (10), then task 2 from 11:
    points at 12, 16, 20."""
    log = MetricLog.open('csv', str(tmp_path), every=4)
    g = log.group(['a', 'b'], lr=[0.1, 0.2])
    loss = np.arange(20.0)[None] * np.array([[1.0], [-1.0]])
    for t in range(2):
        g.start_task(t, offset=10 * t)
        for lo in range(0, 10, 3):
            hi = min(lo + 3, 10)
            g.chunk({'loss': loss[:, 10 * t + lo:10 * t + hi]}, done=hi)
        g.end_task(np.full((2, 2), 0.5), seconds=1.0)
    log.close()
    lines = [ln for ln in read_csv(tmp_path / 'steps.csv') if ln['row'] == 'a']
    steps = [int(ln['step']) for ln in lines]
    assert steps == [4, 8, 10, 12, 16, 20]
    want = [np.mean(np.arange(a, b)) for a, b in
            ((0, 4), (4, 8), (8, 10), (10, 12), (12, 16), (16, 20))]
    assert [float(ln['loss/total']) for ln in lines] == want
    assert {ln['lr'] for ln in lines} == {'0.1'}
    b = [float(ln['loss/total']) for ln in read_csv(tmp_path / 'steps.csv')
         if ln['row'] == 'b']
    assert b == [-v for v in want]
    tasks = read_csv(tmp_path / 'tasks.csv')
    assert [(ln['row'], ln['step'], ln['accuracy/average']) for ln in
            tasks] == [('a', '10', '0.5'), ('b', '10', '0.5'),
                       ('a', '20', '0.5'), ('b', '20', '0.5')]


def test_a_resumed_log_equals_an_uninterrupted_one(tmp_path):
    """Killed after 7 of 10 steps (4 logged, the window 5..7 pending and
    8 logged after a checkpoint at 6), resumed at step 6 with the curves
    so far: the same lines."""
    loss = np.arange(10.0)[None]

    def run(folder, stop=None, resume=None):
        log = MetricLog.open('csv', str(folder), every=4)
        g = log.group(['a'], lr=[0.1])
        done = 0 if resume is None else resume
        g.start_task(0, 0, done, None if resume is None else
                     {'loss': loss[:, :resume]})
        for hi in range(done + 2, 11, 2):
            if stop is not None and hi > stop:
                break
            g.chunk({'loss': loss[:, hi - 2:hi]}, done=hi)
        else:
            g.end_task(np.ones((1, 1)), 1.0)
        log.close()

    run(tmp_path / 'whole')
    run(tmp_path / 'killed', stop=8)
    run(tmp_path / 'killed', resume=6)

    def values(folder):
        return [(ln['step'], ln['loss/total'])
                for ln in read_csv(folder / 'steps.csv')]
    assert values(tmp_path / 'killed') == values(tmp_path / 'whole')
    assert [ln['step'] for ln in read_csv(tmp_path / 'whole' /
                                          'steps.csv')] == ['4', '8', '10']


def test_unknown_kinds_and_bad_every_are_clear_errors():
    assert parse_kinds('csv, tensorboard') == ['csv', 'tensorboard']
    assert parse_kinds('none') == []
    with pytest.raises(ConfigError, match='unknown tensorbord'):
        parse_kinds('csv,tensorbord')
    with pytest.raises(ConfigError, match='--log-every must be >= 1'):
        MetricLog([], every=0)


RUN = [sys.executable, '-m', 'jcl', 'run', '--protocol', 'split-mnist',
       '--scenario', 'class', '--seeds', '2', '--iters', '20', '--hidden',
       '32', '--log-every', '5']


def test_the_command_line_writes_what_tensorboard_and_wandb_read(tmp_path):
    env = {**os.environ, 'WANDB_MODE': 'offline', 'WANDB_SILENT': 'true'}
    out = tmp_path / 'out'
    subprocess.run(RUN + ['--method', 'gr', '--log',
                          'csv,tensorboard,wandb', '--out', str(out)],
                   check=True, env=env, capture_output=True, timeout=900)
    logs = out / 'runs' / 'gr' / 'logs'
    for row in ('seed0', 'seed1'):
        ea = read_tb(logs / 'tensorboard' / row)
        tags = set(ea.Tags()['scalars'])
        assert {'loss/total', 'lr', 'throughput/steps_per_s',
                'accuracy/average', 'accuracy/task1',
                'accuracy/task5'} <= tags
        assert [e.step for e in ea.Scalars('accuracy/average')] == [
            20, 40, 60, 80, 100]
        assert len(ea.Scalars('loss/total')) == 20
    # samples of the classes seen so far: 2 rows of 28 pixels after task 1
    imgs = read_tb(logs / 'tensorboard' / 'seed0').Images('samples')
    assert [(i.height, i.width) for i in imgs] == [
        (28 * 2 * t, 28 * 8) for t in range(1, 6)]
    assert read_tb(logs / 'tensorboard' / 'seed1').Tags()['images'] == []
    # the rows' names and the same windows in steps.csv
    steps = read_csv(logs / 'steps.csv')
    assert [ln['row'] for ln in steps[:4]] == ['seed0', 'seed1'] * 2
    # the R rows in tasks.csv are the accuracy matrices of result.npz
    with np.load(out / 'runs' / 'gr' / 'result.npz') as f:
        R = f['R']
    tasks = read_csv(logs / 'tasks.csv')
    got = np.array([[float(ln[f'accuracy/task{j}']) for j in range(1, 6)]
                    for ln in tasks]).reshape(5, 2, 5).transpose(1, 0, 2)
    np.testing.assert_array_equal(got, R)
    runs = sorted((logs / 'wandb').glob('offline-run-*'))   # one per row
    assert len(runs) == 2
    for run in runs:
        data = b''.join(p.read_bytes() for p in run.glob('*.wandb'))
        assert b'accuracy/average' in data and b'loss/total' in data


def test_the_command_line_refuses_bad_log_flags(tmp_path):
    for flags, says in ((['--log', 'tb'], 'unknown tb'),
                        (['--log-every', '0'], '--log-every must be >= 1')):
        got = subprocess.run(RUN + ['--method', 'none', '--out',
                                    str(tmp_path / 'x')] + flags,
                             capture_output=True, text=True, timeout=300)
        assert got.returncode != 0 and says in got.stderr, got.stderr
        assert not (tmp_path / 'x').exists()
