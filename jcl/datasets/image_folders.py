"""Image-classification task sequences read from folders, as in CLR.

CLR (Ge et al., ICCV 2023) learns 53 image tasks one after another. This
module indexes such a sequence cheaply (file lists only) and decodes
batches on the host on demand: Pillow, ``convert("RGB")``, bilinear
resize to ``S x S`` (the reference's ``transforms.Resize((224, 224))``),
uint8 out; the model normalises with :data:`IMAGENET_MEAN`/``STD``.

Sources that ``open_image_tasks(path)`` understands:

* a **task list file**: one task folder per line, relative to the file's
  folder; blank lines and lines starting with ``#`` are skipped;
* a **root folder** whose visible subfolders are the tasks, sorted by name;
* the **CLR/SKILL release** root (``rolling_releases/database_2.sqlite``
  and ``original_images/``): the tasks are the database's
  ``dataset_id`` values, by default the 53 of CLR in the reference's
  order.

A task folder has one of two layouts (torchvision ``ImageFolder``
conventions: classes are the subfolders sorted by name, labelled 0..C-1,
images are found recursively, hidden entries are skipped):

* **split**: ``task/train/<class>/...`` with ``task/val/`` (or
  ``validation/``) and ``task/test/`` holding the same or fewer classes;
  a missing ``val/`` or ``test/`` is an empty split;
* **plain**: ``task/<class>/...``; each class is split, seeded, into
  ``test_fraction`` and ``val_fraction`` of its images and a train rest.

``subsample='reference'`` then keeps what the reference trains on: per
split, of each class, the first ``round(total / C)`` images of the
class's file list after ``random.Random(seed).shuffle`` (a new generator
per task and split; the reference's seed is 27), where ``C`` is the
split's class count and ``total`` is 5120 for train and 512 for val and
test when ``C >= 60``, else 2560 and 256. Classes past ``max_classes``
(300) are dropped, as the reference does, or refused.

Example:

>>> import tempfile
>>> from jcl.datasets.image_folders import (
...     open_image_tasks, write_example_tasks)
>>> scratch = tempfile.TemporaryDirectory()
>>> task_list = write_example_tasks(scratch.name, class_counts=(3, 2))
>>> tasks = open_image_tasks(task_list, image_size=32, workers=2)
>>> tasks.names, tasks.num_classes
(('task0', 'task1'), [3, 2])
>>> train = tasks.split('train')
>>> train.count
array([18, 12])
>>> batch = train.gather(1, [[0, 5, 11], [3, 3, 7]])
>>> batch.x.shape, batch.x.dtype
((2, 3, 32, 32, 3), dtype('uint8'))
>>> batch.y.tolist(), batch.task.tolist()
([[0, 0, 1], [0, 0, 1]], [[1, 1, 1], [1, 1, 1]])
>>> tasks.close()
>>> scratch.cleanup()
"""

import os
from pathlib import Path

import numpy as np

from jcl.core.errors import ConfigError, DataError
from jcl.core.records import Batch
from jcl.datasets import _image_index as index
from jcl.datasets import _image_release as release
from jcl.datasets._image_decode import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageDecoder,
    decode_image,
    prefetch,
)
from jcl.datasets._image_examples import (
    class_value,
    write_class_images,
    write_example_tasks,
)

REFERENCE_SEED = index.REFERENCE_SEED   # seed of the reference's subsample

__all__ = ['IMAGENET_MEAN', 'IMAGENET_STD', 'REFERENCE_SEED', 'ImageSplit',
           'ImageTasks', 'class_value', 'decode_image', 'open_image_tasks',
           'prefetch', 'write_class_images', 'write_example_tasks']

_SPLIT_ALIASES = {'train': 'train', 'val': 'val', 'validation': 'val',
                  'test': 'test'}


class ImageSplit:
    """One split (train, val or test) of every task: index and gather."""

    def __init__(self, name, tasks):
        self.name = name
        self._tasks = tasks
        self.count = np.asarray([len(t.paths[name]) for t in tasks.indexes],
                                np.int64)

    def _task(self, task):
        if not 0 <= int(task) < len(self.count):
            raise ConfigError(f'task {task} out of range: there are '
                              f'{len(self.count)} tasks')
        return self._tasks.indexes[int(task)]

    def paths(self, task):
        """The image files of ``task`` in this split, entry order."""
        return self._task(task).paths[self.name]

    def labels(self, task):
        """int32 ``[count[task]]``: the label of each entry (no decoding)."""
        return self._task(task).labels[self.name]

    def gather(self, task, entries):
        """Decode the images of ``entries`` of ``task``.

        Args:
          task: the task's index in the sequence.
          entries: integer array of any shape ``[...]``, each in
            ``[0, count[task])``; repeats are decoded once.

        Returns:
          ``Batch(x=uint8 [..., S, S, 3], y=int32 [...], task=int32
          [...])`` of numpy arrays.
        """
        entry = self._task(task)
        entries = np.asarray(entries)
        if entries.size and not np.issubdtype(entries.dtype, np.integer):
            raise ConfigError(f'entries must be integers, not {entries.dtype}')
        entries = entries.astype(np.int64)
        count = self.count[int(task)]
        if entries.size and (entries.min() < 0 or entries.max() >= count):
            raise ConfigError(f'entries of task {task} ({self.name}) must '
                              f'lie in [0, {count})')
        unique, inverse = np.unique(entries.ravel(), return_inverse=True)
        paths = entry.paths[self.name]
        images = self._tasks.decoder.decode([paths[i] for i in unique])
        size = self._tasks.image_size
        return Batch(
            x=images[inverse.ravel()].reshape(entries.shape + (size, size, 3)),
            y=entry.labels[self.name][entries],
            task=np.full(entries.shape, int(task), np.int32))

    def prefetch(self, task, chunks, depth=1):
        """Gather each array of ``chunks`` ahead, in a background thread.

        Yields ``gather(task, c)`` for each ``c`` in ``chunks``; see
        :func:`prefetch` for the threading and shutdown.
        """
        return prefetch(lambda chunk: self.gather(task, chunk), chunks, depth)


class ImageTasks:
    """An indexed sequence of image tasks, sharing one decoder.

    Attributes:
      names: the task names, sequence order.
      num_classes: per task, the number of classes (after the cap).
      class_names: per task, the class of each label.
      image_size: the side of the square images that are returned.
      decoder: the :class:`~jcl.datasets._image_decode.ImageDecoder`.
    """

    def __init__(self, indexes, decoder):
        self.indexes = tuple(indexes)
        self.decoder = decoder
        self.image_size = decoder.image_size
        self.names = tuple(t.name for t in self.indexes)
        self.num_classes = [len(t.class_names) for t in self.indexes]
        self.class_names = [t.class_names for t in self.indexes]
        self._splits = {}

    def split(self, name):
        """The ``'train'``, ``'val'`` (or ``'validation'``) or ``'test'``
        split of every task."""
        if name not in _SPLIT_ALIASES:
            raise ConfigError(f'unknown split {name!r} (train, val, test)')
        name = _SPLIT_ALIASES[name]
        if name not in self._splits:
            self._splits[name] = ImageSplit(name, self)
        return self._splits[name]

    def close(self):
        """Stop the decoding threads."""
        self.decoder.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (f'ImageTasks({len(self.names)} tasks, classes '
                f'{self.num_classes}, {self.image_size}px)')


def _check_options(image_size, seed, subsample, extra_classes, val_fraction,
                   test_fraction):
    if int(seed) != seed or seed < 0:
        raise ConfigError(f'seed must be a non-negative int: {seed}')
    if int(image_size) != image_size or image_size < 1:
        raise ConfigError(f'image_size must be a positive int: {image_size}')
    if subsample not in ('reference', None):
        raise ConfigError(f"subsample must be 'reference' or None, not "
                          f'{subsample!r}')
    if extra_classes not in ('drop', 'error'):
        raise ConfigError("extra_classes must be 'drop' or 'error', not "
                          f'{extra_classes!r}')
    if not (0 <= val_fraction and 0 <= test_fraction
            and val_fraction + test_fraction < 1):
        raise ConfigError('val_fraction and test_fraction must be >= 0 '
                          'with a sum below 1')


def open_image_tasks(path, image_size=224, seed=0, subsample='reference', *,
                     tasks=None, workers=None, cache_bytes=0,
                     val_fraction=0.1, test_fraction=0.1,
                     max_classes=index.REFERENCE_MAX_CLASSES,
                     extra_classes='drop'):
    """Index a sequence of image tasks (no image is decoded here).

    Args:
      path: a task list file, a root folder of task folders, or the CLR
        release root (see the module docstring).
      image_size: side ``S`` of the square uint8 images returned.
      seed: seeds the reference subsample (the reference used 27) and the
        train/val/test split of plain-layout tasks.
      subsample: ``'reference'`` (the reference's per-class subsample of
        every split) or None (every image).
      tasks: the tasks to keep, in this order: names (folders) or
        ``dataset_id`` values (release); default all (release: CLR's
        53).
      workers: decoding threads; default ``min(8, os.cpu_count())``.
      cache_bytes: bound of the cache of decoded images (0: none).
      val_fraction: share of each class that a plain-layout task puts in
        val (rounded half up; train keeps at least one image).
      test_fraction: likewise for test.
      max_classes: classes kept per task, in label order (None: all).
      extra_classes: ``'drop'`` the classes past ``max_classes`` (the
        reference) or ``'error'``.

    Returns:
      An :class:`ImageTasks`.

    Raises:
      DataError: a folder, class or task list is missing or unusable.
      ConfigError: an option is out of range or names no task.
    """
    _check_options(image_size, seed, subsample, extra_classes, val_fraction,
                   test_fraction)
    path = Path(path).expanduser()
    finish = dict(seed=seed, subsample=subsample, max_classes=max_classes,
                  extra_classes=extra_classes)
    indexes = []
    if (path / release.RELEASE_DATABASE).is_file():
        wanted = list(tasks or release.CLR_TASK_IDS)
        for dataset_id, (name, classes, groups) in zip(
                wanted, release.read_release(path, wanted)):
            indexes.append(index.finish_task(
                name, f'{path} (dataset_id={dataset_id})', classes, groups,
                **finish))
    else:
        if path.is_file():
            found = dict(index.read_task_list(path))
        elif path.is_dir():
            if (path / release.RELEASE_IMAGES).is_dir():
                raise DataError(f'{path}: has {release.RELEASE_IMAGES}/ but '
                                f'no {release.RELEASE_DATABASE}')
            found = {n: path / n for n in index.subfolders(path)}
            if not found:
                raise DataError(f'{path}: no task folders in the folder')
        else:
            raise DataError(f'{path}: no such task list or folder')
        for name in index.select_tasks(found, tasks, path):
            classes, groups = index.read_task_folder(
                found[name], seed=seed, val_fraction=val_fraction,
                test_fraction=test_fraction)
            indexes.append(index.finish_task(
                name, str(found[name]), classes, groups, **finish))
    if workers is None:
        workers = min(8, os.cpu_count() or 1)
    return ImageTasks(indexes, ImageDecoder(image_size, workers, cache_bytes))
