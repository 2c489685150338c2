"""A streamed run (host batches, epochs validated, the best epoch kept,
early stopping) checkpointed every 2 steps: ``python streamed_run.py
OUT``. Its source sleeps 40 ms per step's batch, as reading images from
disk would, so that a test can kill it inside a task. Writes OUT/result.npz
and OUT/logs/steps.csv."""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from conftest import synthetic_arrays  # noqa: E402

from jcl.core import taskdata as data_lib  # noqa: E402
from jcl.logs import MetricLog  # noqa: E402
from jcl.methods import si  # noqa: E402
from jcl.models import mlp_classifier  # noqa: E402
from jcl.sweep.run import run_sweep  # noqa: E402
from jcl.sweep.sources import gather_host  # noqa: E402
from jcl.tasks import protocols  # noqa: E402
from jcl.training.epochs import Schedule  # noqa: E402
from jcl.training.learner import Learner  # noqa: E402


class SlowSource:
    def __init__(self, data):
        self.data, self.count = data, np.asarray(data.count)

    def gather(self, task, entries):
        entries = np.asarray(entries)
        time.sleep(0.04 * (entries.shape[0] if entries.ndim > 1 else 1))
        return gather_host(self.data, task, entries)


def main(out):
    proto = protocols.class_split('flat', synthetic_arrays(), 'task')
    train, valid = data_lib.holdout(proto.train, 0.2)
    proto = proto._replace(train=SlowSource(train), valid=valid)
    learner = Learner(
        lambda hp: mlp_classifier((16,), num_outputs=proto.num_outputs,
                                  input_dim=784),
        lambda hp, model: si(model, c=1.0), prepare=proto.prepare,
        batch_size=16)
    os.makedirs(out, exist_ok=True)
    log = MetricLog.open('csv', os.path.join(out, 'logs'), every=4)
    got = run_sweep(learner, proto, hparams={'lr': 3e-3}, seeds=(0, 1),
                    schedule=Schedule(epochs=4, batch_size=16,
                                      select_best=True, patience=1),
                    checkpoint_dir=out, checkpoint_every=2, progress=print,
                    metric_log=log)
    log.close()
    np.savez(os.path.join(out, 'result.tmp.npz'), R=got.R,
             loss=got.metrics['loss'],
             **{f'extra_{k}': v for k, v in got.extras.items()})
    os.replace(os.path.join(out, 'result.tmp.npz'),
               os.path.join(out, 'result.npz'))


if __name__ == '__main__':
    main(sys.argv[1])
