"""Brain-inspired replay (BI-R; van de Ven et al. 2020) and
replay-through-feedback (RtF; van de Ven & Tolias 2018).

One model classifies and generates: the classifier sits on the VAE's
encoder (replay through feedback, :func:`bir_model` with ``rtf=True``).
BI-R adds, each a switch: a mixture prior with a mode per class
(``conditional``), decoder gates per class or per task (``gates``, gating
off ``gate_prop`` of the decoder's units), and soft targets for the
replayed inputs (``distill``). The replay itself is
:func:`jcl.methods.generated_replay.generative_replay`; the generator is
trained on the current batch too (:mod:`jcl.methods.generator_objective`).

>>> model = bir_model((8,), input_dim=6, num_outputs=4, num_tasks=2,
...                   gate_prop=0.5)
>>> m = bir(model, num_classes=4, num_tasks=2)
>>> m.replays, sorted(m.init(model.init(__import__('jax').random.PRNGKey(0)),
...                          None))
(True, ['generator', 'replay'])
"""

from typing import Sequence

from jcl.core.errors import ConfigError
from jcl.core.method import Method
from jcl.core.model import Model
from jcl.methods import networks
from jcl.methods.deep_generative_replay import with_generator
from jcl.methods.entry import (
    POSITIVE,
    REPLAY_SIZE,
    SWITCH,
    UNIT,
    MethodEntry,
    by_protocol,
    default_of,
)
from jcl.methods.generated_replay import generative_replay
from jcl.methods.generator_objective import generator_loss
from jcl.models.paired import paired
from jcl.models.rtf import rtf_vae

GATES = ('class', 'task', 'none')


def _groups(gates, num_classes, num_tasks):
    if gates not in GATES:
        raise ValueError(f'gates must be one of {GATES}, got {gates!r}')
    return {'class': num_classes, 'task': num_tasks or 0, 'none': 0}[gates]


def bir(model: Model, *, num_classes: int, num_tasks: int | None = None,
        conditional: bool = True, gates: str = 'class', distill=1.0,
        temperature=2.0, t2=0.0, replay_size: int | None = None,
        replay_count=None) -> Method:
    """Brain-inspired replay.

    Args:
      model: a generator with a classifier (:func:`bir_model`).
      num_classes: output units. num_tasks: tasks (task gates).
      conditional: replay from the class modes of a mixture prior
        (static; the model must have one).
      gates: the decoder's gates by ``'class'`` or ``'task'``, or
        ``'none'`` (static; the model's).
      distill: 1: the teacher's soft targets; 0: its hard labels (may be
        traced).
      temperature: of the soft targets (may be traced).
      t2: 1: distillation scaled by ``T**2`` (the BI-R paper's code); 0
        (the NMI 2022 code's, the default). May be traced.
      replay_size: replayed inputs per step (static; default: the batch).
      replay_count: how many of them count (may be traced; default all).

    Returns:
      A method that replays: the generator on the current batch
      (``'generator'``) and the replay (``'replay'``).
    """
    groups = _groups(gates, num_classes, num_tasks)
    return with_generator(
        generator_loss(model, conditional=conditional, gate=gates,
                       num_groups=groups),
        generative_replay(model, num_classes=num_classes, distill=distill,
                          temperature=temperature, t2=t2,
                          conditional=conditional, gate=gates,
                          num_groups=groups, replay_size=replay_size,
                          replay_count=replay_count, num_tasks=num_tasks))


def rtf(model: Model, *, num_classes: int, num_tasks: int | None = None,
        temperature=2.0, t2=1.0, replay_size: int | None = None) -> Method:
    """Replay-through-feedback: generative replay with distillation from
    one model (:func:`rtf_model`), no BI-R component."""
    return with_generator(
        generator_loss(model),
        generative_replay(model, num_classes=num_classes, distill=True,
                          temperature=temperature, t2=t2,
                          replay_size=replay_size, num_tasks=num_tasks))


def bir_model(hidden: Sequence[int], *, input_dim: int, num_outputs: int,
              num_tasks: int | None = None, gen_hidden=None,
              rtf: bool = True, conditional: bool = True,
              gates: str = 'class', gate_prop=0.0,
              latent: int = networks.LATENT, output: str = 'sigmoid',
              classifier: Model | None = None) -> Model:
    """BI-R's model (:func:`jcl.models.rtf.rtf_vae`).

    Args:
      hidden: the encoder's (and classifier's) hidden layers.
      input_dim, num_outputs: inputs and output units.
      num_tasks: tasks (for ``gates='task'``).
      gen_hidden: the decoder's hidden layers (default ``hidden``); with
        ``rtf=False`` the whole generator's.
      rtf: one model (the classifier on the encoder); ``False``: a
        generator beside ``classifier`` (:func:`jcl.models.paired`).
      conditional: a mixture prior with a mode per class.
      gates: decoder gates per ``'class'``, per ``'task'`` or ``'none'``.
      gate_prop: the proportion of decoder units gated off (may be a
        tracer).
      latent: latent units. output: ``'sigmoid'`` (pixels) or
        ``'linear'`` (features).
      classifier: with ``rtf=False``, the classifier (required).
    """
    groups = _groups(gates, num_outputs, num_tasks)
    gen = rtf_vae(hidden if rtf else gen_hidden or hidden, latent=latent,
                  input_dim=input_dim, num_outputs=num_outputs,
                  output=output, decoder_hidden=gen_hidden if rtf else None,
                  num_modes=num_outputs if conditional else 0,
                  gate_groups=groups, gate_prop=gate_prop)
    if rtf:
        return gen
    if classifier is None:
        raise ValueError('bir_model(rtf=False) needs the classifier')
    return paired(classifier, gen)


def rtf_model(hidden: Sequence[int], *, input_dim: int, num_outputs: int,
              gen_hidden=None, latent: int = networks.LATENT,
              output: str = 'sigmoid') -> Model:
    """RtF's model: :func:`bir_model` without a mixture prior or gates."""
    return bir_model(hidden, input_dim=input_dim, num_outputs=num_outputs,
                     gen_hidden=gen_hidden, conditional=False, gates='none',
                     latent=latent, output=output)


def _switches(ctx):
    gates = 'task' if ctx.size('bir.task_gates') else 'class'
    return bool(ctx.size('bir.rtf')), bool(ctx.size('bir.conditional')), gates


def _own(network, name):
    if network is not None:
        raise ConfigError(f'{name} is its own network (the classifier on '
                          "the encoder); it does not combine with another "
                          "part's network")


def _bir_generator(ctx, hp, network):
    networks.no_backbone(ctx, 'generators are')
    one, conditional, gates = _switches(ctx)
    if one:
        _own(network, 'bir with bir.rtf=1')
    return bir_model(
        ctx.hidden, input_dim=networks.input_dim(ctx),
        num_outputs=ctx.num_outputs, num_tasks=ctx.num_tasks,
        gen_hidden=ctx.gen_hidden, rtf=one, conditional=conditional,
        gates=gates, gate_prop=hp['bir.dg_prop'],
        output=networks.generator_output(ctx),
        classifier=None if one else network or networks.default_network(
            ctx))


def _rtf_generator(ctx, hp, network):
    del hp  # unused
    networks.no_backbone(ctx, 'generators are')
    _own(network, 'rtf')
    return rtf_model(ctx.hidden, input_dim=networks.input_dim(ctx),
                     num_outputs=ctx.num_outputs, gen_hidden=ctx.gen_hidden,
                     output=networks.generator_output(ctx))


def _build_bir(ctx, hp, model):
    _, conditional, gates = _switches(ctx)
    return bir(model, num_classes=ctx.num_outputs, num_tasks=ctx.num_tasks,
               conditional=conditional, gates=gates,
               distill=hp['bir.distill'], temperature=hp['bir.temperature'],
               t2=hp['bir.t2'], replay_size=ctx.size('bir.replay_size'),
               replay_count=hp['bir.replay_size'])


# The NMI 2022 code's values (params/param_values.py) on split MNIST and
# its ten permutations; the BI-R paper's code's on permuted MNIST with 100
# permutations is `--set bir.dg_prop=0.8 --set bir.t2=1`.
bir_dg_prop = by_protocol({
    ('split-mnist', 'task'): 0.0, ('split-mnist', 'domain'): 0.1,
    ('split-mnist', 'class'): 0.1, ('permuted-mnist', 'task'): 0.0,
    ('permuted-mnist', 'domain'): 0.5, ('permuted-mnist', 'class'): 0.7,
    'task': 0.0, 'domain': 0.5, 'class': 0.7}, 0.0)


def _bir_defaults(p, s, b):
    # the NMI code gates by context (task) in Domain-IL, by class otherwise
    return {'bir.rtf': 1.0, 'bir.conditional': 1.0,
            'bir.task_gates': 1.0 if s == 'domain' else 0.0,
            'bir.dg_prop': bir_dg_prop(p, s),
            'bir.distill': float(default_of(bir, 'distill')),
            'bir.temperature': default_of(bir, 'temperature'),
            'bir.t2': default_of(bir, 't2'), 'bir.replay_size': float(b)}


ENTRIES = [
    MethodEntry(
        'rtf', lambda ctx, hp, model: rtf(
            model, num_classes=ctx.num_outputs, num_tasks=ctx.num_tasks,
            temperature=hp['rtf.temperature'], t2=hp['rtf.t2'],
            replay_size=ctx.size('rtf.replay_size')),
        defaults=lambda p, s, b: {
            'rtf.temperature': default_of(rtf, 'temperature'),
            'rtf.t2': default_of(rtf, 't2'), 'rtf.replay_size': float(b)},
        checks={'rtf.temperature': POSITIVE, 'rtf.t2': SWITCH,
                'rtf.replay_size': REPLAY_SIZE},
        static=('rtf.replay_size',), generator=_rtf_generator,
        summary='replay-through-feedback (van de Ven & Tolias 2018)'),
    MethodEntry(
        'bir', _build_bir, defaults=_bir_defaults,
        checks={'bir.rtf': SWITCH, 'bir.conditional': SWITCH,
                'bir.task_gates': SWITCH, 'bir.dg_prop': UNIT,
                'bir.distill': SWITCH, 'bir.temperature': POSITIVE,
                'bir.t2': SWITCH, 'bir.replay_size': REPLAY_SIZE},
        static=('bir.rtf', 'bir.conditional', 'bir.task_gates'),
        generator=_bir_generator,
        summary='brain-inspired replay (van de Ven et al. 2020); switches '
                'bir.rtf, bir.conditional, bir.dg_prop, bir.distill'),
]
