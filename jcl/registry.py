"""The methods of the command line (one :class:`jcl.specs.MethodSpec`
each, built by :mod:`jcl.builders`) and the checks of a composition's
names and values.

>>> parse_method('gr+si')
['gr', 'si']
>>> sorted(default_hparams(['si'], lr=1e-3, protocol='split-mnist',
...                        scenario='class').items())
[('lr', 0.001), ('si.c', 5000.0), ('si.xi', 0.1)]
"""

import numpy as np

from jcl import builders, defaults
from jcl.errors import ConfigError
from jcl.specs import (
    BUDGET,
    NONNEG,
    POSITIVE,
    REPLAY_SIZE,
    SAMPLES,
    SWITCH,
    UNIT,
    MethodSpec,
    ModelNeeds,
)

METHODS = {
    'none': MethodSpec(),
    'joint': MethodSpec(joint=True),
    'ewc': MethodSpec(
        build=builders.ewc('ewc', False),
        defaults=builders.ewc_defaults('ewc', False),
        checks={'ewc.lambda': NONNEG, 'ewc.fisher_samples': SAMPLES},
        static=('ewc.fisher_samples',)),
    'online-ewc': MethodSpec(
        build=builders.ewc('online-ewc', True),
        defaults=builders.ewc_defaults('online-ewc', True),
        checks={'online-ewc.lambda': NONNEG,
                'online-ewc.fisher_samples': SAMPLES,
                'online-ewc.gamma': (lambda v: 0 < v <= 1,
                                     'must be in (0, 1]')},
        static=('online-ewc.fisher_samples',)),
    'si': MethodSpec(
        build=builders.si,
        defaults=lambda p, s, b: {'si.c': defaults.si_c(p, s), 'si.xi': 0.1},
        checks={'si.c': NONNEG, 'si.xi': POSITIVE}),
    'lwf': MethodSpec(
        build=builders.lwf,
        defaults=lambda p, s, b: {
            'lwf.temperature': 2.0,
            'lwf.class_mean': defaults.lwf_class_mean(p, s)},
        checks={'lwf.temperature': POSITIVE, 'lwf.class_mean': SWITCH}),
    'xdg': MethodSpec(
        model=ModelNeeds(xdg='xdg.proportion'), scenarios=('task',),
        defaults=lambda p, s, b: {
            'xdg.proportion': defaults.xdg_proportion(p, s)},
        checks={'xdg.proportion': UNIT}),
    'gr': MethodSpec(
        build=builders.gr('gr', False), model=ModelNeeds(generator='vae'),
        defaults=lambda p, s, b: {'gr.replay_size': float(b)},
        checks={'gr.replay_size': REPLAY_SIZE}),
    'gr-distill': MethodSpec(
        build=builders.gr('gr-distill', True),
        model=ModelNeeds(generator='vae'),
        defaults=lambda p, s, b: {'gr.temperature': 2.0,
                                  'gr.replay_size': float(b)},
        checks={'gr.temperature': POSITIVE,
                'gr.replay_size': REPLAY_SIZE}),
    'separate': MethodSpec(
        model=ModelNeeds(separate=True), scenarios=('task',),
        reset_optimizer=True, one_bank=True),
    'rtf': MethodSpec(
        build=builders.rtf, model=ModelNeeds(generator='rtf'),
        defaults=lambda p, s, b: {'rtf.temperature': 2.0,
                                  'rtf.t2': 1.0,
                                  'rtf.replay_size': float(b)},
        checks={'rtf.temperature': POSITIVE, 'rtf.t2': SWITCH,
                'rtf.replay_size': REPLAY_SIZE},
        static=('rtf.replay_size',)),
    'bir': MethodSpec(
        build=builders.bir, model=builders.bir_needs,
        defaults=lambda p, s, b: {
            'bir.rtf': 1.0, 'bir.conditional': 1.0,
            'bir.task_gates': defaults.bir_task_gates(p, s),
            'bir.dg_prop': defaults.bir_dg_prop(p, s), 'bir.distill': 1.0,
            'bir.temperature': 2.0, 'bir.t2': defaults.bir_t2(p, s),
            'bir.replay_size': float(b)},
        checks={'bir.rtf': SWITCH, 'bir.conditional': SWITCH,
                'bir.task_gates': SWITCH, 'bir.dg_prop': UNIT,
                'bir.distill': SWITCH, 'bir.temperature': POSITIVE,
                'bir.t2': SWITCH, 'bir.replay_size': REPLAY_SIZE},
        static=('bir.rtf', 'bir.conditional', 'bir.task_gates')),
    'er': MethodSpec(
        build=builders.er, defaults=builders.buffer_defaults('er'),
        checks={'er.per_class': BUDGET, 'er.replay_size': REPLAY_SIZE},
        static=('er.per_class', 'er.replay_size')),
    'agem': MethodSpec(
        build=builders.agem, defaults=builders.buffer_defaults('agem'),
        checks={'agem.per_class': BUDGET, 'agem.replay_size': REPLAY_SIZE},
        static=('agem.per_class', 'agem.replay_size')),
    'icarl': MethodSpec(
        build=builders.icarl, scenarios=('class',), own_objective=True,
        defaults=lambda p, s, b: {
            'icarl.per_class': defaults.buffer_per_class(p, s),
            'icarl.temperature': 2.0, 'icarl.herding': 1.0,
            'icarl.full_capacity': 0.0},
        checks={'icarl.per_class': BUDGET, 'icarl.temperature': POSITIVE,
                'icarl.herding': SWITCH, 'icarl.full_capacity': SWITCH},
        static=('icarl.per_class', 'icarl.herding',
                'icarl.full_capacity')),
    'derpp': MethodSpec(
        build=builders.derpp,
        defaults=lambda p, s, b: {'derpp.budget': 200.0,
                                  'derpp.minibatch': float(b),
                                  'derpp.alpha': 0.2, 'derpp.beta': 1.0},
        checks={'derpp.budget': BUDGET, 'derpp.minibatch': REPLAY_SIZE,
                'derpp.alpha': NONNEG, 'derpp.beta': NONNEG},
        static=('derpp.budget', 'derpp.minibatch')),
}


def _backbone_method(name, mode):
    """The CLR paper's methods on a ResNet backbone (Task-IL, a head per
    task, or one shared head for ``linear``), each with the reference's
    weight penalty ``NAME.l2`` (1e-5)."""
    return MethodSpec(
        build=builders.norm_penalty(name), model=ModelNeeds(backbone=mode),
        defaults=lambda p, s, b: {f'{name}.l2': 1e-5},
        checks={f'{name}.l2': NONNEG}, scenarios=('task',),
        reset_optimizer=True, one_bank=True)


METHODS.update({
    'clr': _backbone_method('clr', 'clr'),
    'clr-full': _backbone_method('clr-full', 'clr-full'),
    'sgd': _backbone_method('sgd', 'finetune'),
    'sgd-ll': _backbone_method('sgd-ll', 'linear'),
    'psp': _backbone_method('psp', 'psp'),
    'supsup': _backbone_method('supsup', 'supsup'),
    'eft': MethodSpec(
        build=builders.eft, model=ModelNeeds(backbone='eft'),
        defaults=lambda p, s, b: {'eft.l2': 1e-5, 'eft.train_base': 1.0},
        checks={'eft.l2': NONNEG, 'eft.train_base': SWITCH},
        scenarios=('task',), reset_optimizer=True, one_bank=True),
})

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


def model_needs(parts: list, static: dict | None = None) -> ModelNeeds:
    """The union of a composition's model needs, given its one-value-per-
    run hyperparameters (at most one part may replace the network, at
    most one may bring a generator)."""
    needs = [m(static or {}) if callable(m) else m
             for m in (METHODS[p].model for p in parts)]
    if sum(n.separate for n in needs) > 1:
        raise ConfigError(f'{"+".join(parts)}: at most one part may '
                          'replace the network')
    gens = [n for n in needs if n.generator]
    if len(gens) > 1:
        raise ConfigError(f'{"+".join(parts)}: at most one part may bring '
                          'a generator')
    if gens and any(n.separate for n in needs):
        raise ConfigError(f'{"+".join(parts)}: separate networks and a '
                          'generator do not combine')
    xdg = [n.xdg for n in needs if n.xdg]
    modes = {n.backbone for n in needs if n.backbone}
    if len(modes) > 1:
        raise ConfigError(f'{"+".join(parts)}: the backbone can be trained '
                          f'one way only, not {" and ".join(sorted(modes))}')
    base = gens[0] if gens else ModelNeeds()
    return base._replace(xdg=xdg[0] if xdg else None,
                         separate=any(n.separate for n in needs),
                         backbone=modes.pop() if modes else '')


def check_scenario(parts: list, scenario: str):
    """Raises :class:`ConfigError` if a part is undefined in ``scenario``."""
    for p in parts:
        if scenario not in METHODS[p].scenarios:
            raise ConfigError(
                f'method {p!r} is defined for '
                f'{"/".join(METHODS[p].scenarios)}-incremental learning '
                f'only, not {scenario}')
    model_needs(parts)


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


def is_joint(parts: list) -> bool:
    """Whether a composition trains on all data so far (Joint)."""
    return any(METHODS[p].joint for p in parts)
