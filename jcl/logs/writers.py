"""Where metric logs go: CSV files, TensorBoard event files, W&B runs.

Every writer takes the same calls from :class:`jcl.logs.MetricLog`:
``scalars(row, step, values, kind)`` (``kind``: ``'step'`` for the curves,
``'task'`` for what is measured after a task), ``image(row, step, tag,
pixels)``, ``purge(rows, step)`` (forget what ``rows`` logged after
``step``: a run resuming from a checkpoint logs those steps again, with
the same values) and ``close()``.

>>> import tempfile
>>> d = tempfile.mkdtemp()
>>> w = CsvWriter(d)
>>> w.scalars('seed0', 10, {'loss/total': 0.5, 'lr': 1e-3}, 'step')
>>> w.scalars('seed0', 20, {'loss/total': 0.25, 'lr': 1e-3}, 'step')
>>> w.purge(['seed0'], 10); w.close()
>>> print(open(d + '/steps.csv').read().strip())
row,step,loss/total,lr
seed0,10,0.5,0.001
"""

import csv
import hashlib
import io
import os
import time

import numpy as np

from jcl.core.errors import ConfigError
from jcl.logs.event_file import (
    EventFile,
    image_event,
    restart_event,
    scalar_event,
)


class CsvWriter:
    """``steps.csv`` and ``tasks.csv`` in ``folder``: one line per row and
    logged step, a column per value (a value first seen later adds a
    column; the file is then rewritten with it)."""

    def __init__(self, folder: str):
        os.makedirs(folder, exist_ok=True)
        self.folder = folder
        self._tables = {}

    def _table(self, kind):
        if kind not in self._tables:
            path = os.path.join(self.folder, f'{kind}s.csv')
            lines, columns = [], ['row', 'step']
            if os.path.exists(path):    # a resumed run appends
                with open(path, newline='') as f:
                    reader = csv.DictReader(f)
                    columns = list(reader.fieldnames or columns)
                    lines = list(reader)
            self._tables[kind] = [path, columns, lines, False]
        return self._tables[kind]

    def scalars(self, row, step, values, kind):
        table = self._table(kind)
        path, columns, lines, _ = table
        line = {'row': row, 'step': str(int(step)),
                **{k: repr(float(v)) for k, v in values.items()}}
        new = [k for k in line if k not in columns]
        lines.append(line)
        if new or not os.path.exists(path):
            columns.extend(new)
            self._rewrite(table)
        else:
            with open(path, 'a', newline='') as f:
                csv.DictWriter(f, columns).writerow(line)

    def _rewrite(self, table):
        path, columns, lines, _ = table
        with open(path + '.tmp', 'w', newline='') as f:
            out = csv.DictWriter(f, columns)
            out.writeheader()
            out.writerows(lines)
        os.replace(path + '.tmp', path)

    def image(self, row, step, tag, pixels):
        del row, step, tag, pixels   # images go to the other writers

    def flush(self):
        pass   # every line is written when it comes

    def purge(self, rows, step):
        rows = set(rows)
        for kind in ('step', 'task'):
            table = self._table(kind)
            kept = [ln for ln in table[2] if not (
                ln['row'] in rows and int(ln['step']) > step)]
            if len(kept) != len(table[2]):
                table[2][:] = kept
                self._rewrite(table)

    def close(self):
        pass


def png(pixels: np.ndarray) -> bytes:
    """``[H, W]`` or ``[H, W, 3]`` uint8 as PNG bytes."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8)).save(buf, format='PNG')
    return buf.getvalue()


class TensorBoardWriter:
    """One TensorBoard run per row: ``folder/<row>/events.out.tfevents.*``
    (``tensorboard --logdir`` of the results folder finds them all)."""

    def __init__(self, folder: str):
        self.folder, self._files = folder, {}

    def _file(self, row):
        if row not in self._files:
            self._files[row] = EventFile(os.path.join(self.folder, row))
        return self._files[row]

    def scalars(self, row, step, values, kind):
        del kind
        self._file(row).write(scalar_event(step, time.time(), values))

    def image(self, row, step, tag, pixels):
        h, w = pixels.shape[:2]
        c = pixels.shape[2] if pixels.ndim == 3 else 1
        self._file(row).write(image_event(step, time.time(), tag,
                                          png(pixels), h, w, c))

    def purge(self, rows, step):
        for row in rows:
            if os.path.isdir(os.path.join(self.folder, row)):
                self._file(row).write(restart_event(step + 1, time.time()))
                self._file(row).flush()

    def flush(self):
        for f in self._files.values():
            f.flush()

    def close(self):
        for f in self._files.values():
            f.close()
        self._files = {}


class WandbWriter:
    """One Weights & Biases run per row, grouped by ``group`` (the
    results folder's method and scenario). Needs ``pip install
    'jcl[wandb]'``; ``WANDB_MODE=offline`` writes the runs under
    ``folder/wandb`` for ``wandb sync`` later. A resumed run reopens the
    same W&B runs (ids from the folder and the row); the steps it logs
    again after a checkpoint carry the values logged before."""

    def __init__(self, folder: str, group: str, config: dict | None = None):
        try:
            import wandb
        except ImportError as e:
            raise ConfigError("--log wandb needs the wandb package: pip "
                              "install 'jcl[wandb]'") from e
        self.wandb, self.folder, self.group = wandb, folder, group
        self.config, self._runs = dict(config or {}), {}
        os.makedirs(folder, exist_ok=True)

    def _run(self, row):
        if row not in self._runs:
            ident = hashlib.sha1(f'{os.path.abspath(self.folder)}/{row}'
                                 .encode()).hexdigest()[:16]
            self._runs[row] = self.wandb.init(
                project=os.environ.get('WANDB_PROJECT', 'jcl'),
                group=self.group, name=f'{self.group}/{row}', id=ident,
                resume='allow', dir=self.folder, reinit='create_new',
                config={**self.config, 'row': row})
        return self._runs[row]

    def scalars(self, row, step, values, kind):
        del kind
        self._run(row).log(dict(values), step=int(step))

    def image(self, row, step, tag, pixels):
        self._run(row).log({tag: self.wandb.Image(pixels)}, step=int(step))

    def flush(self):
        pass

    def purge(self, rows, step):
        del rows, step   # W&B keeps the first value logged at a step

    def close(self):
        for run in self._runs.values():
            run.finish()
        self._runs = {}
