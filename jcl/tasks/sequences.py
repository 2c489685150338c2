"""Sequences of image-classification tasks from distinct sources: the
CLR setting (a frozen pre-trained backbone, one task after another, a
head per task) on data that is on this machine.

The offline sequence (:data:`OFFLINE_TASKS`, default 8 tasks of 10
classes): MNIST, Fashion-MNIST, Animal-MNIST, scikit-learn's 8x8 digits
and the digits of four writing systems rendered from Noto fonts. Every
image is resized to ``size x size`` grey (Pillow's bilinear with
antialias, as torchvision's ``Resize`` of the CLR reference), and each
task is subsampled as the CLR reference does (``jcl.datasets.
image_folders``): ``round(2560 / C)`` training and ``round(256 / C)``
validation images per class (``C`` < 60 classes), drawn disjointly from
the source's training split with a seeded generator (a class too small
for both, as scikit-learn's digits with about 144 per class, gives a
tenth to validation and the rest to training); the test split keeps up
to ``test_per_class`` images per class of the source's test split.

The backbone is pre-trained on Latin letters rendered from the same
fonts (``jcl pretrain --network resnet18 --data glyph-letters``): no
digit, no animal, no garment, so the sequence is disjoint from it, as
CLR's 53 tasks are from ImageNet (only nearly: ImageNet holds some of
their classes).

Labels are laid out in jcl's Task-IL blocks: class ``c`` of task ``t``
is output unit ``t * 10 + c``.

>>> [name for name, _ in OFFLINE_TASKS][:4]
['mnist', 'fashion-mnist', 'animal-mnist', 'sklearn-digits']
"""

import numpy as np
from PIL import Image

from jcl.core.errors import ConfigError
from jcl.core.taskdata import TaskData
from jcl.datasets.imagenet import imagenet_prepare
from jcl.tasks import protocols

OFFLINE_TASKS = (
    ('mnist', None), ('fashion-mnist', None), ('animal-mnist', None),
    ('sklearn-digits', None), ('glyphs', 'devanagari'), ('glyphs', 'thai'),
    ('glyphs', 'tamil'), ('glyphs', 'arabic'))
def load_source(name, variant=None, data_dir=None) -> dict:
    """The uint8 arrays of one source."""
    from jcl import datasets
    if name == 'mnist':
        return datasets.load_mnist()
    if name == 'fashion-mnist':
        return datasets.load_fashion_mnist(data_dir)
    if name == 'animal-mnist':
        return datasets.load_animal_mnist()
    if name == 'sklearn-digits':
        return datasets.load_sklearn_digits()
    if name == 'glyphs':
        return datasets.load_glyph_digits(variant)
    raise ConfigError(f'unknown task source {name!r}')


def resize(images, size: int) -> np.ndarray:
    """uint8 ``[N, H, W]`` -> ``[N, size, size]`` (Pillow bilinear with
    antialias; unchanged when already that size)."""
    images = np.asarray(images)
    if images.shape[1:3] == (size, size):
        return images.astype(np.uint8)
    return np.stack([np.asarray(Image.fromarray(im).resize(
        (size, size), Image.BILINEAR)) for im in images])


def per_class_counts(num_classes: int):
    """The CLR reference's training and validation images per class."""
    big = num_classes >= 60
    return (round((5120 if big else 2560) / num_classes),
            round((512 if big else 256) / num_classes))


def _pick(y, per_class, rng):
    """Up to ``per_class`` entries of each class, seeded."""
    return np.sort(np.concatenate([
        rng.permutation(np.flatnonzero(y == c))[:per_class]
        for c in np.unique(y)]))


def _train_valid(y, n_train, n_valid, rng):
    """Disjoint training and validation entries per class: ``n_valid``
    validation examples (at most a tenth of a small class, at least one)
    and up to ``n_train`` training examples of the rest."""
    train, valid = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        v = min(n_valid, max(1, len(idx) // 10))
        valid.append(idx[:v])
        train.append(idx[v:v + n_train])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(valid))


def offline_sequence(*, tasks=OFFLINE_TASKS, size=32, seed=0,
                     test_per_class=100, sources=None, data_dir=None
                     ) -> protocols.Protocol:
    """The offline task sequence as a Task-IL :class:`Protocol` with a
    validation split.

    Args:
      tasks: ``(source, variant)`` pairs (:func:`load_source`).
      size: image side after resizing.
      seed: the subsampling seed (the same for every run seed, as the
        reference's fixed ``random.seed``).
      test_per_class: test images kept per class.
      sources: ``{(source, variant): arrays}`` already loaded (tests).
    """
    rng = np.random.RandomState(seed)
    splits = {'train': [], 'valid': [], 'test': []}
    width = 0
    for name, variant in tasks:
        arrays = (sources or {}).get((name, variant))
        if arrays is None:
            arrays = load_source(name, variant, data_dir)
        ytr = np.asarray(arrays['train_y']).astype(np.int64)
        yte = np.asarray(arrays['test_y']).astype(np.int64)
        classes = int(max(ytr.max(), yte.max())) + 1
        width = max(width, classes)
        n_train, n_valid = per_class_counts(classes)
        tr, va = _train_valid(ytr, n_train, n_valid, rng)
        te = _pick(yte, test_per_class, rng)
        for split, xs, ys, idx in (('train', arrays['train_x'], ytr, tr),
                                   ('valid', arrays['train_x'], ytr, va),
                                   ('test', arrays['test_x'], yte, te)):
            splits[split].append((resize(np.asarray(xs)[idx], size),
                                  ys[idx]))
    num_tasks = len(tasks)
    data = {k: _task_data(v, width) for k, v in splits.items()}
    units = [list(range(t * width, (t + 1) * width))
             for t in range(num_tasks)]
    return protocols.Protocol(
        name='offline-sequence', scenario='task', train=data['train'],
        test=data['test'], valid=data['valid'],
        active=protocols.active_table('task', units),
        input_shape=(size, size, 3), num_outputs=num_tasks * width,
        prepare=imagenet_prepare,
        task_classes=[list(range(width))] * num_tasks)


def _task_data(parts, width) -> TaskData:
    """One split: the tasks' images pooled, labels local, offsets
    ``t * width``."""
    counts = [len(y) for _, y in parts]
    m = max(counts)
    index = np.zeros((len(parts), m), np.int32)
    start = 0
    for t, n in enumerate(counts):
        index[t, :n] = np.arange(start, start + n)
        start += n
    origin = np.repeat(np.arange(len(parts), dtype=np.int32)[:, None], m, 1)
    return TaskData(
        images=np.concatenate([x for x, _ in parts]),
        labels=np.concatenate([y for _, y in parts]).astype(np.int32),
        index=index, count=np.asarray(counts, np.int32), origin=origin,
        offset=(np.arange(len(parts)) * width).astype(np.int32), perm=None)


class OffsetSplit:
    """A host source (``count``, ``gather``) of an image-folder split with
    labels in jcl's Task-IL blocks: class ``c`` of task ``t`` is unit
    ``t * width + c``."""

    def __init__(self, split, width: int):
        self.split, self.width = split, width
        self.count = np.asarray(split.count)

    def gather(self, task, entries):
        b = self.split.gather(task, entries)
        return b._replace(y=(b.y + task * self.width).astype(np.int32))


def folder_sequence(path, *, image_size=224, num_tasks=None, seed=None,
                    workers=None) -> protocols.Protocol:
    """A task sequence from image folders (the CLR release, a task list or
    a root of task folders;
    :func:`jcl.datasets.image_folders.open_image_tasks`, the reference's
    subsample and its seed 27 unless
    ``seed`` is given) as a Task-IL protocol whose splits are host
    sources: the heads are as wide as the largest task (at most 300
    classes), task ``t``'s active units the first ``C_t`` of its block."""
    from jcl.datasets import image_folders
    if path is None:
        raise ConfigError('image-folders needs --data-dir: the CLR release '
                          'root, a task list file or a folder of task '
                          'folders')
    tasks = image_folders.open_image_tasks(
        path, image_size=image_size, workers=workers,
        seed=image_folders.REFERENCE_SEED if seed is None else seed)
    classes = list(tasks.num_classes)[:num_tasks or None]
    width = max(classes)
    units = [list(range(t * width, t * width + c))
             for t, c in enumerate(classes)]
    active = protocols.active_table('task', units)
    if active.shape[-1] < len(classes) * width:     # the last task's block
        active = np.pad(active, ((0, 0), (0, 0),
                                 (0, len(classes) * width
                                  - active.shape[-1])))
    split = {k: OffsetSplit(tasks.split(k), width)
             for k in ('train', 'val', 'test')}
    return protocols.Protocol(
        name='image-folders', scenario='task', train=split['train'],
        test=split['test'], valid=split['val'], active=active,
        input_shape=(image_size, image_size, 3),
        num_outputs=len(classes) * width, prepare=imagenet_prepare,
        task_classes=[list(range(c)) for c in classes])
