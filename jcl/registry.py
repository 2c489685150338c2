"""The methods of the command line (one :class:`jcl.specs.MethodSpec`
each) and the checks of a composition's names and values.

>>> parse_method('gr+si')
['gr', 'si']
>>> sorted(default_hparams(['si'], lr=1e-3, protocol='split-mnist',
...                        scenario='class').items())
[('lr', 0.001), ('si.c', 5000.0), ('si.xi', 0.1)]
"""

import numpy as np

from jcl import defaults
from jcl.errors import ConfigError
from jcl.specs import (
    BUDGET,
    NONNEG,
    POSITIVE,
    REPLAY_SIZE,
    SAMPLES,
    SWITCH,
    UNIT,
    Members,
    MethodSpec,
    ModelNeeds,
)


def _static(ctx, name, default):
    """A one-value-per-run hyperparameter (the largest over the rows)."""
    return int(ctx.static_max.get(name, default))


def _ewc(prefix, online):
    def build(ctx, hp):
        from jcl.methods.ewc import ewc
        n = _static(ctx, f'{prefix}.fisher_samples',
                    defaults.fisher_samples(ctx.protocol, None))
        extra = {'gamma': hp[f'{prefix}.gamma']} if online else {}
        return Members(other=[(prefix, ewc(
            ctx.model, strength=hp[f'{prefix}.lambda'], online=online,
            fisher_samples=n or None, **extra))])
    return build


def _si(ctx, hp):
    from jcl.methods.si import si
    return Members(other=[('si', si(ctx.model, c=hp['si.c'],
                                    xi=hp['si.xi']))])


def _lwf(ctx, hp):
    from jcl.methods.lwf import lwf
    return Members(replay=[('lwf', lwf(
        ctx.model, temperature=hp['lwf.temperature'],
        class_mean=hp['lwf.class_mean']))])


def _gr(name, distill):
    def build(ctx, hp):
        from jcl.methods.generative import generator_loss
        from jcl.methods.replay import generative_replay
        size = _static(ctx, 'gr.replay_size', ctx.batch)
        return Members(
            current=[('generator', generator_loss(ctx.model))],
            replay=[(name, generative_replay(
                ctx.model, num_classes=ctx.data.num_outputs,
                distill=distill, temperature=hp.get('gr.temperature', 2.0),
                replay_size=size, replay_count=hp['gr.replay_size'],
                num_tasks=ctx.num_tasks))])
    return build


def _bir_needs(static):
    """BI-R's model from its static switches (see ``_bir``)."""
    return ModelNeeds(
        generator='rtf' if static.get('bir.rtf', 1) else 'separate',
        conditional=bool(static.get('bir.conditional', 1)),
        gates='task' if static.get('bir.task_gates', 0) else 'class',
        gate_prop='bir.dg_prop')


def _bir(ctx, hp):
    """Brain-inspired replay; each component a switch: ``bir.rtf`` (one
    model), ``bir.conditional`` (mixture prior), ``bir.dg_prop`` (gates;
    0: none), ``bir.distill`` (soft targets); ``bir.task_gates``, the
    gates' groups."""
    from jcl.methods.generative import generator_loss
    from jcl.methods.replay import generative_replay
    needs = _bir_needs(ctx.static_max)
    groups = (ctx.num_tasks if needs.gates == 'task'
              else ctx.data.num_outputs)
    size = _static(ctx, 'bir.replay_size', ctx.batch)
    return Members(
        current=[('generator', generator_loss(
            ctx.model, conditional=needs.conditional, gate=needs.gates,
            num_groups=groups))],
        replay=[('bir', generative_replay(
            ctx.model, num_classes=ctx.data.num_outputs,
            distill=hp['bir.distill'], temperature=hp['bir.temperature'],
            t2=hp['bir.t2'], conditional=needs.conditional,
            gate=needs.gates, num_groups=groups, replay_size=size,
            replay_count=hp['bir.replay_size'], num_tasks=ctx.num_tasks))])


def _rtf(ctx, hp):
    from jcl.methods.generative import generator_loss
    from jcl.methods.replay import generative_replay
    return Members(
        current=[('generator', generator_loss(ctx.model))],
        replay=[('rtf', generative_replay(
            ctx.model, num_classes=ctx.data.num_outputs, distill=True,
            temperature=hp['rtf.temperature'], t2=hp['rtf.t2'],
            replay_size=_static(ctx, 'rtf.replay_size', ctx.batch),
            num_tasks=ctx.num_tasks))])


def _er(ctx, hp):
    from jcl.methods.er import er
    return Members(replay=[('er', er(
        ctx.model, per_class=_static(ctx, 'er.per_class', 100),
        replay_size=_static(ctx, 'er.replay_size', ctx.batch),
        **ctx.buffer_layout()))])


def _agem(ctx, hp):
    from jcl.methods.agem import agem
    return Members(other=[('agem', agem(
        ctx.model, per_class=_static(ctx, 'agem.per_class', 100),
        replay_size=_static(ctx, 'agem.replay_size', ctx.batch),
        **ctx.buffer_layout()))])


def _icarl(ctx, hp):
    from jcl.methods.icarl import icarl
    return Members(current=[('icarl', icarl(
        ctx.model, per_class=_static(ctx, 'icarl.per_class', 100),
        temperature=hp['icarl.temperature'],
        selection='herding' if _static(ctx, 'icarl.herding', 1)
        else 'random',
        num_outputs=ctx.data.num_outputs,
        task_sizes=[int(c) for c in ctx.data.train.count],
        batch_size=ctx.batch, **ctx.buffer_layout()))])


def _derpp(ctx, hp):
    from jcl.methods.derpp import derpp
    layout = ctx.buffer_layout()
    return Members(other=[('derpp', derpp(
        ctx.model, prepare=layout['prepare'],
        input_shape=layout['input_shape'], dtype=layout['dtype'],
        num_outputs=ctx.data.num_outputs,
        size=_static(ctx, 'derpp.budget', 200),
        minibatch=_static(ctx, 'derpp.minibatch', ctx.batch),
        alpha=hp['derpp.alpha'], beta=hp['derpp.beta']))])


def _buffer_defaults(name, extra=None):
    def get(p, s, b):
        return {f'{name}.per_class': defaults.buffer_per_class(p, s),
                f'{name}.replay_size': float(b), **(extra or {})}
    return get


def _ewc_defaults(prefix, online):
    def get(p, s, b):
        out = {f'{prefix}.lambda': defaults.ewc_lambda(p, s),
               f'{prefix}.fisher_samples': defaults.fisher_samples(p, s)}
        if online:
            out[f'{prefix}.gamma'] = 1.0
        return out
    return get


METHODS = {
    'none': MethodSpec(),
    'joint': MethodSpec(joint=True),
    'ewc': MethodSpec(
        build=_ewc('ewc', False), defaults=_ewc_defaults('ewc', False),
        checks={'ewc.lambda': NONNEG, 'ewc.fisher_samples': SAMPLES},
        static=('ewc.fisher_samples',)),
    'online-ewc': MethodSpec(
        build=_ewc('online-ewc', True),
        defaults=_ewc_defaults('online-ewc', True),
        checks={'online-ewc.lambda': NONNEG,
                'online-ewc.fisher_samples': SAMPLES,
                'online-ewc.gamma': (lambda v: 0 < v <= 1,
                                     'must be in (0, 1]')},
        static=('online-ewc.fisher_samples',)),
    'si': MethodSpec(
        build=_si,
        defaults=lambda p, s, b: {'si.c': defaults.si_c(p, s), 'si.xi': 0.1},
        checks={'si.c': NONNEG, 'si.xi': POSITIVE}),
    'lwf': MethodSpec(
        build=_lwf,
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
        build=_gr('gr', False), model=ModelNeeds(generator='vae'),
        defaults=lambda p, s, b: {'gr.replay_size': float(b)},
        checks={'gr.replay_size': REPLAY_SIZE}),
    'gr-distill': MethodSpec(
        build=_gr('gr-distill', True), model=ModelNeeds(generator='vae'),
        defaults=lambda p, s, b: {'gr.temperature': 2.0,
                                  'gr.replay_size': float(b)},
        checks={'gr.temperature': POSITIVE,
                'gr.replay_size': REPLAY_SIZE}),
    'separate': MethodSpec(
        model=ModelNeeds(separate=True), scenarios=('task',),
        reset_optimizer=True),
    'rtf': MethodSpec(
        build=_rtf, model=ModelNeeds(generator='rtf'),
        defaults=lambda p, s, b: {'rtf.temperature': 2.0,
                                  'rtf.t2': 1.0,
                                  'rtf.replay_size': float(b)},
        checks={'rtf.temperature': POSITIVE, 'rtf.t2': SWITCH,
                'rtf.replay_size': REPLAY_SIZE},
        static=('rtf.replay_size',)),
    'bir': MethodSpec(
        build=_bir, model=_bir_needs,
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
        build=_er, defaults=_buffer_defaults('er'),
        checks={'er.per_class': BUDGET, 'er.replay_size': REPLAY_SIZE},
        static=('er.per_class', 'er.replay_size')),
    'agem': MethodSpec(
        build=_agem, defaults=_buffer_defaults('agem'),
        checks={'agem.per_class': BUDGET, 'agem.replay_size': REPLAY_SIZE},
        static=('agem.per_class', 'agem.replay_size')),
    'icarl': MethodSpec(
        build=_icarl, scenarios=('class',), own_objective=True,
        defaults=lambda p, s, b: {
            'icarl.per_class': defaults.buffer_per_class(p, s),
            'icarl.temperature': 2.0, 'icarl.herding': 1.0},
        checks={'icarl.per_class': BUDGET, 'icarl.temperature': POSITIVE,
                'icarl.herding': SWITCH},
        static=('icarl.per_class', 'icarl.herding')),
    'derpp': MethodSpec(
        build=_derpp,
        defaults=lambda p, s, b: {'derpp.budget': 200.0,
                                  'derpp.minibatch': float(b),
                                  'derpp.alpha': 0.2, 'derpp.beta': 1.0},
        checks={'derpp.budget': BUDGET, 'derpp.minibatch': REPLAY_SIZE,
                'derpp.alpha': NONNEG, 'derpp.beta': NONNEG},
        static=('derpp.budget', 'derpp.minibatch')),
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
    base = gens[0] if gens else ModelNeeds()
    return base._replace(xdg=xdg[0] if xdg else None,
                         separate=any(n.separate for n in needs))


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
