"""The papers' protocols by name, with their defaults and task orders.

>>> spec = protocol_spec('split-mnist')
>>> spec.hidden, spec.iters, spec.lr, spec.batch
((400, 400), 2000, 0.001, 128)
>>> shuffled_order('split-mnist', 1).reshape(5, 2).tolist()
[[4, 6], [0, 5], [3, 9], [2, 7], [8, 1]]
"""

from typing import NamedTuple

import numpy as np

from jcl.core.errors import ConfigError
from jcl.tasks import protocols


class ProtocolSpec(NamedTuple):
    """Defaults of a named protocol (the papers' values).

    Attributes:
      dataset: the data set it is built from.
      kind: ``'split'`` (classes split into tasks) or ``'permuted'``.
      hidden: the MLP's hidden layers.
      iters: iterations per task. lr: Adam's learning rate. batch: the
        minibatch size.
      num_tasks: number of tasks (permuted MNIST: the default number of
        permutations).
      num_classes: classes of the data set.
      separate_hidden: hidden units of each network of "separate
        networks" (the NMI code's budget-matched sizes).
      doc: a one-line description.
      epochs: passes over each task's data instead of ``iters``
        iterations (``None``: iterations).
      optimizer: ``'adam'`` or ``'sgd'``
        (:data:`jcl.training.optim.OPTIMIZERS`).
      init: the MLP's initialisation, ``'torch'`` or ``'xavier'``.
      class_outputs: Class-IL's active units, ``'seen'`` or ``'all'``.
      backbone: a ResNet (``'resnet18'``, ``'resnet50'``) instead of the
        MLP (``kind='sequence'``: image tasks from several sources).
      reset_optimizer: every method starts each task with a fresh
        optimiser (the CLR reference builds one per task).
    """

    dataset: str
    kind: str
    hidden: tuple
    iters: int
    lr: float
    batch: int
    num_tasks: int
    num_classes: int
    separate_hidden: tuple
    doc: str
    epochs: int | None = None
    optimizer: str = 'adam'
    init: str = 'torch'
    class_outputs: str = 'seen'
    backbone: str | None = None
    reset_optimizer: bool = False


PROTOCOLS = {
    'split-mnist': ProtocolSpec(
        'mnist', 'split', (400, 400), 2000, 1e-3, 128, 5, 10, (100, 100),
        'MNIST digits 0/1, 2/3, ..., 8/9; MLP 784-400-400'),
    'split-fashion-mnist': ProtocolSpec(
        'fashion-mnist', 'split', (400, 400), 2000, 1e-3, 128, 5, 10,
        (100, 100), 'Fashion-MNIST classes 0/1, ..., 8/9; MLP 784-400-400'),
    'permuted-mnist': ProtocolSpec(
        'mnist', 'permuted', (1000, 1000), 5000, 1e-4, 128, 10, 10,
        (400, 400), 'MNIST padded to 32x32, fixed pixel permutations; MLP '
        '1024-1000-1000-10 (NMI code)'),
    'seq-mnist': ProtocolSpec(
        'mnist', 'split', (100, 100), 0, 0.03, 10, 5, 10, (100, 100),
        'the DER paper\'s sequential MNIST (mammoth): MNIST 0/1, ..., '
        '8/9; MLP 784-100-100 (Xavier), plain SGD, batch 10, 1 epoch per '
        'task (every output unit trained from the first task)', epochs=1,
        optimizer='sgd', init='xavier', class_outputs='all'),
    'split-cifar10': ProtocolSpec(
        'cifar10', 'split', (2000, 2000), 5000, 1e-4, 256, 5, 10,
        (400, 400), 'CIFAR-10 in 5 tasks of 2 classes'),
    'split-cifar100': ProtocolSpec(
        'cifar100', 'split', (2000, 2000), 5000, 1e-4, 256, 10, 100,
        (400, 400), 'CIFAR-100 in 10 tasks of 10 classes'),
    'offline-sequence': ProtocolSpec(
        'offline', 'sequence', (), 0, 1e-3, 32, 8, 10, (),
        'CLR\'s setting offline: 8 image tasks of 10 classes from distinct '
        'sources (MNIST, Fashion-MNIST, Animal-MNIST, scikit-learn digits, '
        'digits of 4 scripts), 32x32, a head per task; ResNet-18 '
        'pre-trained on Latin letters', epochs=60, backbone='resnet18',
        reset_optimizer=True),
    'image-folders': ProtocolSpec(
        'folders', 'sequence', (), 0, 1e-3, 32, 53, 300, (),
        'CLR\'s sequence from image folders (--data-dir: the 53-task '
        'release, a task list or a folder of task folders), 224x224, a '
        'head per task; ResNet-18 (--backbone: e.g. torchvision\'s '
        'ImageNet weights)', epochs=60, backbone='resnet18',
        reset_optimizer=True),
}


def protocol_spec(name: str) -> ProtocolSpec:
    """The :class:`ProtocolSpec` of ``name``, or a clear error."""
    if name not in PROTOCOLS:
        raise ConfigError(f'unknown protocol {name!r}; choose one of '
                          f'{", ".join(PROTOCOLS)}')
    return PROTOCOLS[name]


def shuffled_order(name: str, seed: int) -> np.ndarray:
    """The NMI code's class order for ``seed`` (split protocols).

    The NMI code (GMvandeVen/continual-learning e6d795a, ``main.py`` and
    ``data/load.py``) seeds numpy's global generator with the seed, draws
    ``p = permutation(num_classes)`` and relabels class ``y`` as ``p[y]``:
    output unit ``k`` holds the class ``y`` with ``p[y] = k``, so the
    order is ``argsort(p)``. Seed 0 is its exception: the fixed order.
    (The BI-R paper's code keeps the fixed order for all seeds below 10.)
    """
    spec = protocol_spec(name)
    if seed == 0:
        return np.arange(spec.num_classes)
    p = np.random.RandomState(seed).permutation(spec.num_classes)
    return np.argsort(p)


def class_order(name: str, order: str, seed: int):
    """``None`` (the papers' fixed order) or the seed's shuffled order."""
    if order == 'fixed':
        return None
    if order == 'shuffled':
        return shuffled_order(name, seed)
    raise ConfigError(f'unknown class order {order!r}; choose fixed or '
                      'shuffled')


def load_arrays(name: str, data_dir=None) -> dict:
    """The uint8 arrays of a named protocol's data set."""
    from jcl import datasets
    spec = protocol_spec(name)
    if spec.kind == 'sequence':
        return {}        # each task's source is loaded with the protocol
    if spec.dataset == 'mnist':
        return datasets.load_mnist()
    if spec.dataset == 'fashion-mnist':
        return datasets.load_fashion_mnist(data_dir)
    return datasets.load_cifar(spec.dataset, data_dir)


def load_protocol(name: str, scenario: str, *, num_tasks=None,
                  class_order=None, data_dir=None, perm_seed=0,
                  validation=0.0, arrays=None, class_outputs='seen',
                  features=False, image_size=224) -> protocols.Protocol:
    """Loads the data of a named protocol and lays out its tasks.

    Args:
      name: a key of :data:`PROTOCOLS`. scenario: task/domain/class.
      num_tasks: permuted MNIST's number of permutations.
      class_order: split protocols' class order (default: fixed 0, 1, ...).
      data_dir: where Fashion-MNIST IDX or CIFAR python files are.
      perm_seed: seed of the permutations.
      validation: fraction of each task's training data held out as
        ``protocol.valid`` (0: none).
      arrays: the data set's arrays, if already loaded.
      class_outputs: Class-IL's active units, ``'seen'`` or ``'all'``
        (:func:`jcl.tasks.protocols.active_table`).
      image_size: side of the images of folder sequences.
      features: the data are features of a frozen front end
        (:func:`jcl.weights.front_end.feature_arrays`, given as ``arrays``): the
        protocol's ``prepare`` is the identity.
    """
    spec = protocol_spec(name)
    protocols.check_scenario(scenario)
    if spec.kind == 'sequence':
        return _sequence(name, spec, scenario, num_tasks, data_dir, features,
                         image_size)
    if arrays is None:
        arrays = load_arrays(name, data_dir)
    if spec.kind == 'permuted' and features:
        raise ConfigError('--features: the front end applies to split '
                          'protocols')
    if spec.kind == 'permuted':
        proto = protocols.permuted(name, arrays, scenario,
                                   num_tasks=num_tasks or spec.num_tasks,
                                   seed=perm_seed,
                                   class_outputs=class_outputs)
    else:
        per_task = (int(np.max(arrays['train_y'])) + 1) // spec.num_tasks
        proto = protocols.class_split(
            name, arrays, scenario, classes_per_task=per_task,
            class_order=class_order, class_outputs=class_outputs,
            prepare=protocols.pixels if not features else features_as_is)
        if features:
            proto = proto._replace(inputs='features')
    if validation:
        proto = protocols.with_validation(proto, validation)
    return proto



def _sequence(name, spec, scenario, num_tasks, data_dir, features,
              image_size=224):
    from jcl.tasks import sequences
    if scenario != 'task':
        raise ConfigError(f'{name} is a task-incremental sequence (a head '
                          f'per task); --scenario {scenario} is not defined')
    if features:
        raise ConfigError(f'--features does not apply to {name}')
    if spec.dataset == 'folders':
        return sequences.folder_sequence(data_dir, num_tasks=num_tasks,
                                         image_size=image_size)
    tasks = sequences.OFFLINE_TASKS[:num_tasks or spec.num_tasks]
    return sequences.offline_sequence(tasks=tasks, data_dir=data_dir)


def features_as_is(x):
    """``prepare`` of feature protocols: the features as they are."""
    return x
