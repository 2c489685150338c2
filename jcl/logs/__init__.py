"""Metric logs: CSV, TensorBoard event files (no TensorFlow needed) and
Weights & Biases runs, written on the host between compiled chunks.

* :mod:`jcl.logs.metric_log`: :class:`MetricLog` (the writers, how often)
  and :class:`GroupLog` (what a training loop reports: curves per chunk,
  accuracies and samples per task).
* :mod:`jcl.logs.writers`: ``CsvWriter``, ``TensorBoardWriter``,
  ``WandbWriter``.
* :mod:`jcl.logs.event_file`: the TFRecord/protocol-buffer encoding of
  TensorBoard's event files.
* :mod:`jcl.logs.images`: a generative model's samples, a row per class.

From Python: ``jcl.run_sweep(..., metric_log=MetricLog.open('csv,
tensorboard', folder))``; from the command line: ``jcl run --log
csv,tensorboard,wandb`` (csv by default, ``none`` for none).
"""

from jcl.logs.metric_log import KINDS, GroupLog, MetricLog, parse_kinds

__all__ = ['KINDS', 'GroupLog', 'MetricLog', 'parse_kinds']
