"""Index image-classification tasks: file lists, splits and subsampling.

Nothing here opens an image, so a sequence of 53 tasks indexes in seconds.
Task folders (with or without ``train/val/test`` subfolders) and task
list files are read here, the CLR release's database in
:mod:`jcl.datasets._image_release`; both end in :func:`finish_task`.
"""

import math
import os
import random
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jcl.core.errors import ConfigError, DataError

SPLITS = ('train', 'val', 'test')
# Folder names of each split in the split layout, in order of preference.
SPLIT_FOLDERS = {'train': ('train',), 'val': ('val', 'validation'),
                 'test': ('test',)}
# torchvision's ImageFolder extensions plus the reference's .jfif/.gif.
IMAGE_EXTENSIONS = frozenset({
    '.bmp', '.gif', '.jfif', '.jpeg', '.jpg', '.pgm', '.png', '.ppm',
    '.tif', '.tiff', '.webp'})
REFERENCE_MAX_CLASSES = 300
# The reference's subsample: round(total / C) images of each class, where
# total depends on the split and on whether C >= 60, and its cap of 300
# classes (dataset/sample_dataset.py:92-103,158-220 of gyhandy/Channel-wise-
# Lightweight-Reprogramming at c1c374a; its stat.csv agrees).
REFERENCE_LARGE_TASK = 60
REFERENCE_TOTALS = {'train': (2560, 5120), 'val': (256, 512),
                    'test': (256, 512)}
REFERENCE_SEED = 27


@dataclass(frozen=True)
class TaskIndex:
    """The files of one task, after capping, splitting and subsampling.

    Attributes:
      name: the task's name (its folder as listed, or the release's name).
      where: the folder (or database) the task was read from, for messages.
      class_names: the class of each label, label order.
      paths: per split, the image files.
      labels: per split, int32 labels aligned with ``paths``.
    """

    name: str
    where: str
    class_names: tuple
    paths: dict
    labels: dict


def _is_image(name):
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def subfolders(folder):
    """Sorted names of the visible subfolders of ``folder``."""
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries
                          if e.is_dir() and not e.name.startswith('.'))
    except OSError as e:
        raise DataError(f'{folder}: cannot list the folder: '
                        f'{e.strerror or e}') from None


def _class_files(folder):
    """Image files under one class folder (recursive, sorted)."""
    found = []
    for top, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
        found.extend(os.path.join(top, f) for f in sorted(files)
                     if _is_image(f) and not f.startswith('.'))
    if not found:
        raise DataError(f'{folder}: class folder has no image files '
                        f'({", ".join(sorted(IMAGE_EXTENSIONS))})')
    return found


def _class_groups(folder, class_names=None):
    """``{class name: files}`` of a folder of class folders.

    With ``class_names`` (the train split's), every class must be one of
    them; a class absent from this folder is simply absent.
    """
    names = subfolders(folder)
    if class_names is not None:
        unknown = sorted(set(names) - set(class_names))
        if unknown:
            raise DataError(f'{folder}: class folder {unknown[0]!r} is not '
                            'a class of the train split')
    return {name: _class_files(os.path.join(folder, name)) for name in names}


def check_classes(where, class_names):
    """A :class:`DataError` naming ``where`` unless there are 2+ classes."""
    if len(class_names) >= 2:
        return
    hint = ''
    if os.path.isdir(where) and any(map(_is_image, os.listdir(where))):
        hint = ' (it holds images itself: is it a class folder?)'
    raise DataError(f'{where}: a task needs at least 2 class folders, '
                    f'found {len(class_names)}{hint}')


def _carve(name, files_by_label, seed, val_fraction, test_fraction):
    """Seeded per-class train/val/test split of a plain-layout task."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    split_groups = {split: [] for split in SPLITS}
    for label, files in files_by_label:
        n = len(files)
        n_test = min(math.floor(n * test_fraction + 0.5), n - 1)
        n_val = min(math.floor(n * val_fraction + 0.5), n - 1 - n_test)
        order = rng.permutation(n)
        parts = {'test': order[:n_test], 'val': order[n_test:n_test + n_val],
                 'train': order[n_test + n_val:]}
        for split, picks in parts.items():
            if len(picks):
                split_groups[split].append(
                    (label, [files[i] for i in np.sort(picks)]))
    return split_groups


def read_task_folder(folder, *, seed, val_fraction, test_fraction):
    """Index one task folder, in the split or the plain layout.

    A plain-layout task is split with a generator seeded by ``seed`` and
    the folder's own name.

    Returns:
      ``(class_names, {split: [(label, files), ...]})``.
    """
    folder = os.path.normpath(folder)
    if not os.path.isdir(folder):
        raise DataError(f'{folder}: task folder not found')
    present = subfolders(folder)
    if 'train' not in present:            # plain: class folders only
        groups = _class_groups(folder)
        class_names = tuple(groups)
        check_classes(folder, class_names)
        return class_names, _carve(
            os.path.basename(folder), list(enumerate(groups.values())), seed,
            val_fraction, test_fraction)
    known = {f for names in SPLIT_FOLDERS.values() for f in names}
    extra = sorted(set(present) - known)
    if extra:
        raise DataError(f'{folder}: folder {extra[0]!r} next to train/ is '
                        'not a split (train, val or validation, test)')
    train = _class_groups(os.path.join(folder, 'train'))
    class_names = tuple(train)
    check_classes(os.path.join(folder, 'train'), class_names)
    label_of = {c: i for i, c in enumerate(class_names)}
    split_groups = {'train': list(enumerate(train.values()))}
    for split in ('val', 'test'):
        split_groups[split] = []
        for sub in SPLIT_FOLDERS[split]:
            if sub in present:
                groups = _class_groups(os.path.join(folder, sub), class_names)
                split_groups[split] = [(label_of[c], f)
                                       for c, f in groups.items()]
                break
    return class_names, split_groups


def reference_subsample(split, groups, seed):
    """Keep ``round(total / C)`` shuffled images of each class.

    Mirrors ``ShellDataset._random_value`` of the reference: one
    ``random.Random(seed)`` per task and split; the classes are visited in
    ``groups`` order and each class's file list is shuffled whole
    (``random.shuffle``) before its first ``round(total / C)`` files are
    kept, so there is no replacement and a smaller class keeps all its
    files. ``C`` is the number of classes present in the split and
    ``total`` is given by :data:`REFERENCE_TOTALS`.
    """
    classes = len(groups)
    if not classes:
        return groups
    total = REFERENCE_TOTALS[split][classes >= REFERENCE_LARGE_TASK]
    per_class = round(total / classes)   # Python's round, as the reference
    rng = random.Random(seed)
    kept = []
    for label, files in groups:
        files = list(files)
        rng.shuffle(files)
        kept.append((label, files[:per_class]))
    return kept


def finish_task(name, where, class_names, split_groups, *, seed, subsample,
                max_classes, extra_classes):
    """Cap the classes, subsample, and flatten into a :class:`TaskIndex`."""
    if max_classes is not None and len(class_names) > max_classes:
        if extra_classes == 'error':
            raise DataError(
                f'{where}: {len(class_names)} classes, more than the cap of '
                f'{max_classes} (the reference keeps the first {max_classes}'
                "; pass extra_classes='drop' to do the same)")
        class_names = class_names[:max_classes]
        split_groups = {s: [(c, f) for c, f in g if c < max_classes]
                        for s, g in split_groups.items()}
    paths, labels = {}, {}
    for split in SPLITS:
        groups = split_groups.get(split, [])
        if subsample == 'reference':
            groups = reference_subsample(split, groups, seed)
        paths[split] = tuple(f for _, files in groups for f in files)
        labels[split] = np.asarray(
            [c for c, files in groups for _ in files], np.int32)
    return TaskIndex(name, where, tuple(class_names), paths, labels)


def read_task_list(list_file):
    """``(name, folder)`` of each task in a task list file.

    One task folder per line, relative to the file's folder (or absolute);
    blank lines and lines starting with ``#`` are skipped.
    """
    list_file = Path(list_file)
    try:
        lines = list_file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f'{list_file}: cannot read the task list: {e}') \
            from None
    tasks = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        folder = list_file.parent / line
        if not folder.is_dir():
            raise DataError(f'{list_file}:{number}: task folder {folder} '
                            'not found')
        tasks.append((line.rstrip('/\\') or line, folder))
    if not tasks:
        raise DataError(f'{list_file}: the task list names no task folder')
    return tasks


def select_tasks(available, wanted, where):
    """Pick ``wanted`` (names, in that order) among ``available`` keys."""
    if wanted is None:
        return list(available)
    missing = [w for w in wanted if w not in available]
    if missing:
        names = ', '.join(map(str, list(available)[:8]))
        raise ConfigError(f'{where}: no task {missing[0]!r} (tasks: '
                          f'{names}{", ..." if len(available) > 8 else ""})')
    return list(wanted)
