"""Deep generative replay (GR; Shin et al. 2017), with and without
distillation.

A VAE beside the classifier (:func:`gr_model`) learns the data of every
task; on later tasks the model as it was at the end of the previous task
generates inputs, labels them (hard labels, or soft targets with
``gr_distill``) and the student learns them as a classifier and as a
generator (:func:`jcl.methods.generated_replay.generative_replay`).

>>> from jcl.models import mlp_classifier
>>> model = gr_model(mlp_classifier((8,), num_outputs=4, input_dim=6),
...                  hidden=(8,), input_dim=6)
>>> m = gr(model, num_classes=4)
>>> m.replays, model.name
(True, 'mlp 6-8-4 + vae 6-8-100')
"""

from typing import Sequence

from jcl.core.combine import current_weight, named_chain, replayed, scale
from jcl.core.method import Method
from jcl.core.model import Model
from jcl.methods import networks
from jcl.methods.entry import POSITIVE, REPLAY_SIZE, MethodEntry, default_of
from jcl.methods.generated_replay import generative_replay
from jcl.methods.generator_objective import generator_loss
from jcl.models.paired import paired
from jcl.models.vae import vae_model


def with_generator(generator: Method, replay: Method) -> Method:
    """A generator trained on the current batch (weighted ``1/t``) and a
    replay method (weighted ``1 - 1/t``), as one method that replays:
    members ``'generator'`` and ``'replay'``."""
    return named_chain(('generator', scale(generator, current_weight)),
                       ('replay', replayed(replay)))


def gr(model: Model, *, num_classes: int, num_tasks: int | None = None,
       replay_size: int | None = None, replay_count=None,
       distill=False, temperature=2.0) -> Method:
    """Generative replay.

    Args:
      model: a classifier paired with a generator (:func:`gr_model`).
      num_classes: output units.
      num_tasks: tasks of the sequence (default: from the active table).
      replay_size: replayed inputs per step (static; default: the batch).
      replay_count: how many of them count (may be traced; default all).
      distill: soft targets at ``temperature`` instead of hard labels.
      temperature: of the soft targets (may be traced).

    Returns:
      A method that replays: the generator's loss on the current batch
      and the replay terms
      (:func:`jcl.methods.generated_replay.generative_replay`).
    """
    return with_generator(generator_loss(model), generative_replay(
        model, num_classes=num_classes, distill=distill,
        temperature=temperature, replay_size=replay_size,
        replay_count=replay_count, num_tasks=num_tasks))


def gr_distill(model: Model, *, num_classes: int,
               num_tasks: int | None = None, replay_size: int | None = None,
               replay_count=None, temperature=2.0) -> Method:
    """Generative replay with distillation: :func:`gr` with the teacher's
    soft targets at ``temperature``."""
    return gr(model, num_classes=num_classes, num_tasks=num_tasks,
              replay_size=replay_size, replay_count=replay_count,
              distill=True, temperature=temperature)


def gr_model(classifier: Model, *, hidden: Sequence[int], input_dim: int,
             latent: int = networks.LATENT,
             output: str = 'sigmoid') -> Model:
    """GR's model: ``classifier`` paired with an MLP VAE ``input_dim -
    hidden... - latent`` (:func:`jcl.models.vae.vae_model`)."""
    return paired(classifier, vae_model(hidden, latent=latent,
                                        input_dim=input_dim, output=output))


def _generator(ctx, hp, network):
    del hp  # unused
    networks.no_backbone(ctx, 'generators are')
    return gr_model(network or networks.default_network(ctx),
                    hidden=ctx.gen_hidden or ctx.hidden,
                    input_dim=networks.input_dim(ctx),
                    output=networks.generator_output(ctx))


def _entry(name, factory):
    def build(ctx, hp, model):
        extra = ({'temperature': hp['gr.temperature']}
                 if factory is gr_distill else {})
        return factory(model, num_classes=ctx.num_outputs,
                       num_tasks=ctx.num_tasks,
                       replay_size=ctx.size('gr.replay_size'),
                       replay_count=hp['gr.replay_size'], **extra)

    def defaults(p, s, b):
        out = {'gr.replay_size': float(b)}
        if factory is gr_distill:
            out['gr.temperature'] = default_of(gr_distill, 'temperature')
        return out

    checks = {'gr.replay_size': REPLAY_SIZE}
    if factory is gr_distill:
        checks['gr.temperature'] = POSITIVE
    return MethodEntry(
        name, build, defaults=defaults, checks=checks, generator=_generator,
        summary=('generative replay with distillation' if factory is
                 gr_distill else 'generative replay (Shin et al. 2017)'))


ENTRIES = [_entry('gr', gr), _entry('gr-distill', gr_distill)]
