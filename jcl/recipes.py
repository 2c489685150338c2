"""Named protocols and methods: what the command line can ask for.

This module turns names (``'split-mnist'``, ``'ewc+xdg'``) and explicit
keyword values into :class:`jcl.train.Learner` objects. It never sees an
argparse namespace or a config object; ``jcl.cli`` does that.
"""

from typing import Callable, NamedTuple

import numpy as np

from jcl import combine, data as data_lib
from jcl.errors import ConfigError
from jcl.methods.supervised import supervised
from jcl.models.classifier import mlp_classifier
from jcl.train import Learner, adam


class ProtocolSpec(NamedTuple):
    """Defaults of a protocol (the papers' values)."""

    dataset: str
    kind: str            # 'split' or 'permuted'
    hidden: tuple
    iters: int
    lr: float
    batch: int
    num_tasks: int
    doc: str


PROTOCOLS = {
    'split-mnist': ProtocolSpec(
        'mnist', 'split', (400, 400), 2000, 1e-3, 128, 5,
        'MNIST digits 0/1, 2/3, ..., 8/9; MLP 784-400-400'),
    'split-fashion-mnist': ProtocolSpec(
        'fashion-mnist', 'split', (400, 400), 2000, 1e-3, 128, 5,
        'Fashion-MNIST classes 0/1, ..., 8/9; MLP 784-400-400'),
    'permuted-mnist': ProtocolSpec(
        'mnist', 'permuted', (1000, 1000), 5000, 1e-4, 128, 10,
        'MNIST padded to 32x32, fixed pixel permutations; MLP '
        '1024-1000-1000-10 (NMI code)'),
    'split-cifar10': ProtocolSpec(
        'cifar10', 'split', (2000, 2000), 5000, 1e-4, 256, 5,
        'CIFAR-10 in 5 tasks of 2 classes'),
    'split-cifar100': ProtocolSpec(
        'cifar100', 'split', (2000, 2000), 5000, 1e-4, 256, 10,
        'CIFAR-100 in 10 tasks of 10 classes'),
}


def protocol_spec(name: str) -> ProtocolSpec:
    if name not in PROTOCOLS:
        raise ConfigError(f'unknown protocol {name!r}; choose one of '
                          f'{", ".join(PROTOCOLS)}')
    return PROTOCOLS[name]


def load_protocol(name: str, scenario: str, *, num_tasks=None,
                  class_order=None, data_dir=None,
                  perm_seed=0) -> data_lib.Protocol:
    """Loads the data of a named protocol and lays out its tasks.

    Args:
      name: a key of :data:`PROTOCOLS`. scenario: task/domain/class.
      num_tasks: permuted MNIST's number of permutations.
      class_order: split protocols' class order (default: fixed 0, 1, ...).
      data_dir: where Fashion-MNIST IDX or CIFAR python files are.
      perm_seed: seed of the permutations.
    """
    from jcl import datasets
    spec = protocol_spec(name)
    data_lib.check_scenario(scenario)
    if spec.dataset == 'mnist':
        arrays = datasets.load_mnist()
    elif spec.dataset == 'fashion-mnist':
        arrays = datasets.load_fashion_mnist(data_dir)
    else:
        arrays = datasets.load_cifar(spec.dataset, data_dir)
    if spec.kind == 'permuted':
        return data_lib.permuted(name, arrays, scenario,
                                 num_tasks=num_tasks or spec.num_tasks,
                                 seed=perm_seed)
    per_task = (int(np.max(arrays['train_y'])) + 1) // spec.num_tasks
    return data_lib.class_split(name, arrays, scenario,
                                classes_per_task=per_task,
                                class_order=class_order)


class BuildCtx(NamedTuple):
    """What a method builder may use: the classifier and the protocol."""

    classify: Callable
    hidden: tuple
    num_tasks: int
    num_outputs: int
    input_dim: int


class MethodSpec(NamedTuple):
    """A named method of the command line.

    Attributes:
      build: ``(ctx: BuildCtx, hp) -> Method | None`` (``None``: the method
        changes only data or architecture).
      defaults: hyperparameter name -> default value.
      checks: hyperparameter name -> (predicate, requirement text).
      replay: replays data, so the current loss is weighted ``1/t``.
      joint: trains on the data of all tasks so far.
    """

    build: Callable
    defaults: dict = {}
    checks: dict = {}
    replay: bool = False
    joint: bool = False


METHODS = {
    'none': MethodSpec(build=lambda ctx, hp: None),
    'joint': MethodSpec(build=lambda ctx, hp: None, joint=True),
}

GLOBAL_CHECKS = {'lr': (lambda v: v > 0, 'must be > 0')}


def parse_method(spec: str) -> list:
    """``'gr+si'`` -> ``['gr', 'si']``, with a clear error for unknowns."""
    parts = [p.strip() for p in spec.split('+')]
    for p in parts:
        if p not in METHODS:
            raise ConfigError(f'unknown method {p!r} in {spec!r}; known: '
                              f'{", ".join(sorted(METHODS))} (combine '
                              'with +)')
    if len(set(parts)) != len(parts):
        raise ConfigError(f'method {spec!r} names a part twice')
    return parts


def default_hparams(parts: list, *, lr: float) -> dict:
    """The hyperparameters of a method composition with their defaults."""
    hp = {'lr': lr}
    for p in parts:
        hp.update(METHODS[p].defaults)
    return hp


def check_hparams(parts: list, hp: dict):
    """Raises :class:`ConfigError` for unknown or impossible values."""
    checks = dict(GLOBAL_CHECKS)
    for p in parts:
        checks.update(METHODS[p].checks)
    known = set(default_hparams(parts, lr=1.0))
    for name, values in hp.items():
        if name not in known:
            raise ConfigError(
                f'unknown hyperparameter {name!r} for method '
                f'{"+".join(parts)}; known: {", ".join(sorted(known))}')
        if name in checks:
            ok, need = checks[name]
            for v in np.atleast_1d(values):
                if not np.isfinite(v) or not ok(v):
                    raise ConfigError(f'{name}={v:g}: {need}')


def build_learner(protocol: data_lib.Protocol, parts: list, *,
                  hidden: tuple, iters: int, batch: int) -> Learner:
    """The learner of a method composition on a protocol.

    The current-task loss comes first (weighted ``1/t`` when a part
    replays), then each part's own terms under its name.
    """
    if iters < 1:
        raise ConfigError(f'iterations per task must be >= 1, got {iters}')
    if batch < 1:
        raise ConfigError(f'batch size must be >= 1, got {batch}')
    input_dim = protocol.input_shape[0]
    clf = mlp_classifier(hidden, num_outputs=protocol.num_outputs,
                         input_dim=input_dim)
    ctx = BuildCtx(clf.apply, tuple(hidden), protocol.num_tasks,
                   protocol.num_outputs, input_dim)
    replay = any(METHODS[p].replay for p in parts)

    def make_method(hp):
        ce = supervised(clf.apply)
        if replay:
            ce = combine.scale(ce, combine.current_weight)
        members = [('ce', ce)]
        for p in parts:
            m = METHODS[p].build(ctx, hp)
            if m is not None:
                members.append((p, m))
        return combine.named_chain(*members)

    return Learner(clf.init, clf.apply, make_method, adam,
                   num_steps=iters, batch_size=batch)


def is_joint(parts: list) -> bool:
    return any(METHODS[p].joint for p in parts)
