"""Named protocols and methods: what the command line can ask for.

This module turns names (``'split-mnist'``, ``'ewc+xdg'``) and explicit
keyword values into :class:`jcl.train.Learner` objects. It never sees an
argparse namespace or a config object; ``jcl.cli`` does that.
"""

from typing import Callable, NamedTuple

import numpy as np

from jcl import combine
from jcl import data as data_lib
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
                  class_order=None, data_dir=None, perm_seed=0,
                  validation=0.0) -> data_lib.Protocol:
    """Loads the data of a named protocol and lays out its tasks.

    Args:
      name: a key of :data:`PROTOCOLS`. scenario: task/domain/class.
      num_tasks: permuted MNIST's number of permutations.
      class_order: split protocols' class order (default: fixed 0, 1, ...).
      data_dir: where Fashion-MNIST IDX or CIFAR python files are.
      perm_seed: seed of the permutations.
      validation: fraction of each task's training data held out as
        ``protocol.valid`` (0: none).
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
        proto = data_lib.permuted(name, arrays, scenario,
                                  num_tasks=num_tasks or spec.num_tasks,
                                  seed=perm_seed)
    else:
        per_task = (int(np.max(arrays['train_y'])) + 1) // spec.num_tasks
        proto = data_lib.class_split(name, arrays, scenario,
                                     classes_per_task=per_task,
                                     class_order=class_order)
    if validation:
        proto = data_lib.with_validation(proto, validation)
    return proto


class BuildCtx(NamedTuple):
    """What a method builder may use: the classifier and the protocol."""

    classify: Callable
    hidden: tuple
    num_tasks: int
    num_outputs: int
    input_dim: int
    protocol: str
    scenario: str
    batch: int
    static_max: dict   # hp name -> largest value over the vmapped rows


def _no_defaults(protocol, scenario, batch):
    del protocol, scenario, batch  # unused
    return {}


class MethodSpec(NamedTuple):
    """A named method of the command line.

    Attributes:
      build: ``(ctx: BuildCtx, hp) -> Method | None`` (``None``: the method
        changes only data or architecture).
      defaults: ``(protocol, scenario, batch) -> {hp name: default}``;
        the NMI
        code's grid-searched values where it has them.
      checks: hyperparameter name -> (predicate, requirement text).
      replay: replays data, so the current loss is weighted ``1/t``.
      joint: trains on the data of all tasks so far.
      scenarios: the scenarios the method is defined for.
      classifier: builds another classifier, ``(hidden, ctx) -> Classifier``
        (separate networks); ``None``: the usual MLP.
      reset_optimizer: fresh optimiser state at every task start.
      static: hyperparameters that set a shape or a loop length (one value
        per run: settable with ``--set``, not a ``--grid`` axis).
    """

    build: Callable
    defaults: Callable = _no_defaults
    checks: dict = {}
    replay: bool = False
    joint: bool = False
    scenarios: tuple = ('task', 'domain', 'class')
    classifier: Callable | None = None
    reset_optimizer: bool = False
    static: tuple = ()


def _table(values, fallback):
    """Defaults from a ``{(protocol, scenario): value}`` table."""
    def get(protocol, scenario):
        return values.get((protocol, scenario),
                          values.get(scenario, fallback))
    return get


# The NMI code's grid-searched values (params/param_values.py), which it
# found with Class-IL over all output units; see BUILD_NOTES.md.
EWC_LAMBDA = _table({
    ('split-mnist', 'task'): 1e5, ('split-mnist', 'domain'): 1e10,
    ('split-mnist', 'class'): 1e9, ('permuted-mnist', 'task'): 100.0,
    ('permuted-mnist', 'domain'): 100.0,
    ('permuted-mnist', 'class'): 100.0, 'task': 1e5, 'domain': 1e10,
    'class': 1e9}, 1e5)
SI_C = _table({
    ('split-mnist', 'task'): 10.0, ('split-mnist', 'domain'): 5e4,
    ('split-mnist', 'class'): 5e3, ('permuted-mnist', 'task'): 10.0,
    ('permuted-mnist', 'domain'): 10.0, ('permuted-mnist', 'class'): 5.0,
    'task': 10.0, 'domain': 5e4, 'class': 5e3}, 10.0)
XDG_PROP = _table({('split-mnist', 'task'): 0.9,
                   ('permuted-mnist', 'task'): 0.6}, 0.9)

def _default_lwf_class_mean(protocol):
    """LwF's distillation is summed over classes (SPEC.md, the NMI code
    since May 2019) except on permuted MNIST, whose published numbers
    (arXiv 1809.10635, 2018) come from the code that averaged over
    classes: jcl measures 73.75 with the mean and 37.28 with the sum
    against the published 72.64 (BUILD_NOTES.md)."""
    return 1.0 if protocol == 'permuted-mnist' else 0.0


NONNEG = (lambda v: v >= 0, 'must be >= 0')
POSITIVE = (lambda v: v > 0, 'must be > 0')
UNIT = (lambda v: 0 <= v < 1, 'must be in [0, 1)')
SWITCH = (lambda v: v in (0, 1), 'must be 0 or 1')
SAMPLES = (lambda v: v >= 0 and float(v).is_integer(),
           'must be a whole number of examples (0: the whole task)')
REPLAY_SIZE = (lambda v: v >= 1 and float(v).is_integer() and v <= 1 << 16,
               'must be a whole number of replayed inputs, 1..65536')


def _default_fisher_samples(protocol):
    """The NMI code uses the whole task (0 here) for split protocols,
    1000 samples for permuted MNIST (60,000 examples per task)."""
    return 1000.0 if protocol == 'permuted-mnist' else 0.0


def _fisher_samples(ctx, name):
    """The (static) number of Fisher samples; 0 means the whole task."""
    n = int(ctx.static_max.get(name, _default_fisher_samples(ctx.protocol)))
    return n or None


def _build_ewc(ctx, hp):
    from jcl.methods.ewc import ewc
    return ewc(ctx.classify, strength=hp['ewc.lambda'],
               fisher_samples=_fisher_samples(ctx, 'ewc.fisher_samples'))


def _build_online_ewc(ctx, hp):
    from jcl.methods.ewc import ewc
    return ewc(ctx.classify, strength=hp['online-ewc.lambda'],
               gamma=hp['online-ewc.gamma'], online=True,
               fisher_samples=_fisher_samples(ctx,
                                              'online-ewc.fisher_samples'))


def _build_si(ctx, hp):
    from jcl.methods.si import si
    return si(c=hp['si.c'], xi=hp['si.xi'])


def _build_lwf(ctx, hp):
    from jcl.methods.lwf import lwf
    return lwf(ctx.classify, temperature=hp['lwf.temperature'],
               class_mean=hp['lwf.class_mean'])


def _build_xdg(ctx, hp):
    from jcl.methods.xdg import xdg
    return xdg(ctx.hidden, num_tasks=ctx.num_tasks,
               proportion=hp['xdg.proportion'])


def _build_gr(distill):
    def build(ctx, hp):
        from jcl.methods.replay import gr
        from jcl.models.vae import vae_generator
        gen = vae_generator(ctx.hidden, latent=100, input_dim=ctx.input_dim)
        size = int(ctx.static_max.get('gr.replay_size', ctx.batch))
        return gr(ctx.classify, gen, distill=distill,
                  temperature=hp.get('gr.temperature', 2.0),
                  replay_size=size, replay_count=hp['gr.replay_size'],
                  num_tasks=ctx.num_tasks)
    return build


def _separate_classifier(hidden, ctx):
    from jcl.models.classifier import separate_classifiers
    del hidden  # the budget-matched size replaces it
    units = 100 if ctx.protocol.startswith('split-') and \
        'cifar' not in ctx.protocol else 400
    return separate_classifiers((units, units), num_tasks=ctx.num_tasks,
                                num_outputs=ctx.num_outputs,
                                input_dim=ctx.input_dim)


METHODS = {
    'none': MethodSpec(build=lambda ctx, hp: None),
    'joint': MethodSpec(build=lambda ctx, hp: None, joint=True),
    'ewc': MethodSpec(
        build=_build_ewc,
        defaults=lambda p, s, b: {
            'ewc.lambda': EWC_LAMBDA(p, s),
            'ewc.fisher_samples': _default_fisher_samples(p)},
        checks={'ewc.lambda': NONNEG, 'ewc.fisher_samples': SAMPLES},
        static=('ewc.fisher_samples',)),
    'online-ewc': MethodSpec(
        build=_build_online_ewc,
        defaults=lambda p, s, b: {'online-ewc.lambda': EWC_LAMBDA(p, s),
                               'online-ewc.gamma': 1.0,
                               'online-ewc.fisher_samples':
                                   _default_fisher_samples(p)},
        static=('online-ewc.fisher_samples',),
        checks={'online-ewc.lambda': NONNEG,
                'online-ewc.fisher_samples': SAMPLES,
                'online-ewc.gamma': (lambda v: 0 < v <= 1,
                                     'must be in (0, 1]')}),
    'si': MethodSpec(
        build=_build_si,
        defaults=lambda p, s, b: {'si.c': SI_C(p, s), 'si.xi': 0.1},
        checks={'si.c': NONNEG, 'si.xi': POSITIVE}),
    'lwf': MethodSpec(
        build=_build_lwf, replay=True,
        defaults=lambda p, s, b: {'lwf.temperature': 2.0,
                                  'lwf.class_mean':
                                      _default_lwf_class_mean(p)},
        checks={'lwf.temperature': POSITIVE, 'lwf.class_mean': SWITCH}),
    'xdg': MethodSpec(
        build=_build_xdg, scenarios=('task',),
        defaults=lambda p, s, b: {'xdg.proportion': XDG_PROP(p, s)},
        checks={'xdg.proportion': UNIT}),
    'gr': MethodSpec(
        build=_build_gr(False), replay=True,
        defaults=lambda p, s, b: {'gr.replay_size': float(b)},
        checks={'gr.replay_size': REPLAY_SIZE}),
    'gr-distill': MethodSpec(
        build=_build_gr(True), replay=True,
        defaults=lambda p, s, b: {'gr.temperature': 2.0,
                                  'gr.replay_size': float(b)},
        checks={'gr.temperature': POSITIVE,
                'gr.replay_size': REPLAY_SIZE}),
    'separate': MethodSpec(
        build=lambda ctx, hp: None, scenarios=('task',),
        classifier=_separate_classifier, reset_optimizer=True),
}

GLOBAL_CHECKS = {'lr': POSITIVE}


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


def default_hparams(parts: list, *, lr: float, protocol='split-mnist',
                    scenario='class', batch=128) -> dict:
    """The hyperparameters of a method composition with their defaults."""
    hp = {'lr': lr}
    for p in parts:
        hp.update(METHODS[p].defaults(protocol, scenario, batch))
    return hp


def check_scenario(parts: list, scenario: str):
    """Raises :class:`ConfigError` if a part is undefined in ``scenario``."""
    for p in parts:
        if scenario not in METHODS[p].scenarios:
            raise ConfigError(
                f'method {p!r} is defined for '
                f'{"/".join(METHODS[p].scenarios)}-incremental learning '
                f'only, not {scenario}')
    if sum(METHODS[p].classifier is not None for p in parts) > 1:
        raise ConfigError(f'{"+".join(parts)}: at most one part may '
                          'replace the classifier')


def static_hparams(parts: list) -> set:
    """The names of a composition's one-value-per-run hyperparameters."""
    return {n for p in parts for n in METHODS[p].static}


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
                  hidden: tuple, iters: int, batch: int,
                  static_max: dict | None = None) -> Learner:
    """The learner of a method composition on a protocol.

    The current-task loss comes first (weighted ``1/t`` when a part
    replays), then each part's own terms under its name.

    Args:
      static_max: the largest value of each hyperparameter over the rows
        that will be vmapped together; hyperparameters that set a shape
        (GR's ``gr.replay_size``) draw at that size and mask the rest.
    """
    if iters < 1:
        raise ConfigError(f'iterations per task must be >= 1, got {iters}')
    if batch < 1:
        raise ConfigError(f'batch size must be >= 1, got {batch}')
    check_scenario(parts, protocol.scenario)
    input_dim = protocol.input_shape[0]
    clf = mlp_classifier(hidden, num_outputs=protocol.num_outputs,
                         input_dim=input_dim)
    ctx = BuildCtx(clf.apply, tuple(hidden), protocol.num_tasks,
                   protocol.num_outputs, input_dim, protocol.name,
                   protocol.scenario, batch, dict(static_max or {}))
    for p in parts:
        if METHODS[p].classifier is not None:
            clf = METHODS[p].classifier(hidden, ctx)
            ctx = ctx._replace(classify=clf.apply, hidden=clf.hidden)
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
                   num_steps=iters, batch_size=batch,
                   reset_optimizer=any(METHODS[p].reset_optimizer
                                       for p in parts))


def is_joint(parts: list) -> bool:
    return any(METHODS[p].joint for p in parts)
