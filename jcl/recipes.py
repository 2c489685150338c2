"""Learners from names: a protocol and a method composition.

Turns a :class:`jcl.protocols.Protocol`, its :class:`jcl.catalog.
ProtocolSpec` and method names (``'ewc+xdg'``) into a
:class:`jcl.train.Learner`: the model the methods need, the members of
the method in their roles, and the optimiser. It never sees an argparse
namespace or a config object; ``jcl.cli`` does that.

>>> import numpy as np
>>> from jcl import catalog, protocols
>>> pool = dict(train_x=np.zeros((4, 6), np.uint8),
...             train_y=np.arange(4), test_x=np.zeros((4, 6), np.uint8),
...             test_y=np.arange(4))
>>> proto = protocols.class_split('toy', pool, 'task')
>>> learner = build_learner(proto, catalog.protocol_spec('split-mnist'),
...                         ['gr', 'si'], hidden=(8,), iters=5, batch=2)
>>> learner.make_model({'xdg.proportion': 0.5}).name
'mlp 6-8-4 + vae 6-8-100'
"""

from jcl import combine
from jcl.catalog import ProtocolSpec
from jcl.errors import ConfigError
from jcl.learner import Learner
from jcl.methods.supervised import supervised
from jcl.model import Model
from jcl.models.classifier import XdG, mlp_classifier, separate_classifiers
from jcl.models.paired import paired
from jcl.models.rtf import rtf_vae
from jcl.models.vae import vae_model
from jcl.optim import OPTIMIZERS
from jcl.protocols import Protocol
from jcl.registry import METHODS, check_scenario, model_needs
from jcl.specs import BuildCtx, ModelNeeds

LATENT = 100  # the references' VAE latent size


def build_model(protocol: Protocol, spec: ProtocolSpec, needs: ModelNeeds,
                hp, *, hidden: tuple, gen_hidden=None) -> Model:
    """The model a composition needs on a protocol.

    Args:
      protocol: the task sequence (input size, outputs, tasks).
      spec: its paper defaults (the separate networks' size).
      needs: from :func:`jcl.registry.model_needs`.
      hp: hyperparameters (XdG's proportion may be a tracer).
      hidden: the classifier's hidden layers.
      gen_hidden: the generator's (GR's VAE, or the decoder of a
        replay-through-feedback model); ``None``: ``hidden``.
    """
    if spec.backbone:
        return _backbone_model(protocol, spec, needs)
    if needs.backbone:
        raise ConfigError(f'the method trains a ResNet backbone '
                          f'({needs.backbone}); {protocol.name} has none: '
                          'use --protocol offline-sequence')
    input_dim = protocol.input_shape[0]
    output = 'sigmoid' if protocol.inputs == 'pixels' else 'linear'
    if needs.separate:
        clf = separate_classifiers(spec.separate_hidden,
                                   num_tasks=protocol.num_tasks,
                                   num_outputs=protocol.num_outputs,
                                   input_dim=input_dim)
    else:
        xdg = (XdG(protocol.num_tasks, hp[needs.xdg]) if needs.xdg
               else None)
        clf = mlp_classifier(hidden, num_outputs=protocol.num_outputs,
                             input_dim=input_dim, xdg=xdg, init=spec.init)
    if needs.generator == 'vae':
        return paired(clf, vae_model(gen_hidden or hidden, latent=LATENT,
                                     input_dim=input_dim, output=output))
    if needs.generator in ('rtf', 'separate'):
        groups = (protocol.num_tasks if needs.gates == 'task'
                  else protocol.num_outputs)
        # one model: the encoder is the classifier's, the decoder may
        # differ; a separate generator: all of it
        own = needs.generator == 'separate'
        gen = rtf_vae(gen_hidden or hidden if own else hidden,
                      latent=LATENT, input_dim=input_dim,
                      num_outputs=protocol.num_outputs, output=output,
                      decoder_hidden=None if own else gen_hidden,
                      num_modes=protocol.num_outputs if needs.conditional
                      else 0,
                      gate_groups=groups if needs.gates != 'none' else 0,
                      gate_prop=hp[needs.gate_prop] if needs.gate_prop
                      else 0.0)
        return gen if needs.generator == 'rtf' else paired(clf, gen)
    return clf


def _backbone_model(protocol, spec, needs) -> Model:
    from jcl.models.backbone import resnet_model
    if needs.generator or needs.xdg:
        raise ConfigError(f'{protocol.name}: generators and XdG are not '
                          'available on a ResNet backbone yet')
    # separate networks: one fine-tuned copy of the backbone per task
    mode = 'separate' if needs.separate else needs.backbone or 'finetune'
    return resnet_model(depth=int(spec.backbone[len('resnet'):]),
                        stem='imagenet', num_tasks=protocol.num_tasks,
                        head_width=protocol.num_outputs // protocol.num_tasks,
                        mode=mode,
                        input_shape=protocol.input_shape)


def build_learner(protocol: Protocol, spec: ProtocolSpec, parts: list, *,
                  hidden: tuple, iters: int, batch: int, gen_hidden=None,
                  static_max: dict | None = None,
                  epochs: int | None = None, reinit: bool = False) -> Learner:
    """The learner of a method composition on a protocol.

    The current-task cross-entropy comes first; each part adds its
    members, and :func:`jcl.combine.replay_weighted` weighs current and
    replayed data.

    Args:
      static_max: the largest value of each hyperparameter over the rows
        that will be vmapped together; hyperparameters that set a shape
        (GR's ``gr.replay_size``) draw at that size and mask the rest.
      epochs: passes over each task's data instead of ``iters`` steps.
      reinit: fresh trainable parameters before every task after the
        first (:class:`jcl.learner.Learner`).
    """
    if epochs is not None:
        if epochs < 1:
            raise ConfigError(f'epochs per task must be >= 1, got {epochs}')
    elif iters < 1:
        raise ConfigError(f'iterations per task must be >= 1, got {iters}')
    if batch < 1:
        raise ConfigError(f'batch size must be >= 1, got {batch}')
    check_scenario(parts, protocol.scenario)
    needs = model_needs(parts, static_max)

    def make_model(hp):
        return build_model(protocol, spec, needs, hp, hidden=hidden,
                           gen_hidden=gen_hidden)

    def make_method(hp, model):
        ctx = BuildCtx(model, protocol, batch, protocol.name,
                       dict(static_max or {}))
        own = any(METHODS[p].own_objective for p in parts)
        current = [] if own else [('ce', supervised())]
        replay, other = [], []
        for p in parts:
            members = METHODS[p].build(ctx, hp)
            current += members.current
            replay += members.replay
            other += members.other
        return combine.replay_weighted(current=current, replay=replay,
                                       other=other)

    return Learner(make_model, make_method,
                   make_optimizer=OPTIMIZERS[spec.optimizer],
                   prepare=protocol.prepare, num_steps=iters,
                   batch_size=batch, epochs=epochs, reinit=reinit,
                   reset_optimizer=spec.reset_optimizer or any(
                       METHODS[p].reset_optimizer for p in parts),
                   bank_slices=all(METHODS[p].one_bank for p in parts))
