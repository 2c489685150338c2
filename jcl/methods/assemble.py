"""Learners from names: a protocol and a method composition.

Turns a :class:`jcl.tasks.protocols.Protocol`, its
:class:`jcl.tasks.catalog.ProtocolSpec` and the names of a composition
(``'ewc+xdg'``) into a :class:`jcl.training.learner.Learner`: the model
its parts ask for, the method (:func:`jcl.methods.compose` of the parts'
factories) and the optimiser. It never sees an argparse namespace or a
config object; ``jcl.cli`` does that.

>>> import numpy as np
>>> from jcl.tasks import catalog, protocols
>>> pool = dict(train_x=np.zeros((4, 6), np.uint8),
...             train_y=np.arange(4), test_x=np.zeros((4, 6), np.uint8),
...             test_y=np.arange(4))
>>> proto = protocols.class_split('toy', pool, 'task')
>>> learner = build_learner(proto, catalog.protocol_spec('split-mnist'),
...                         ['gr', 'si'], hidden=(8,), iters=5, batch=2)
>>> learner.make_model({'gr.replay_size': 2.0}).name
'mlp 6-8-4 + vae 6-8-100'
"""

from jcl.core.errors import ConfigError
from jcl.core.model import Model
from jcl.methods import catalog, networks
from jcl.methods.entry import BuildCtx
from jcl.methods.objective import compose
from jcl.training.learner import Learner
from jcl.training.optim import OPTIMIZERS


def build_model(ctx: BuildCtx, parts: list, hp) -> Model:
    """The model a composition trains: the protocol's classifier, or the
    network one part brings, with the generator one part may bring."""
    entries = [catalog.entry(p) for p in parts]
    network = next((e.network(ctx, hp) for e in entries if e.network),
                   None)
    for e in entries:
        if e.generator is not None:
            return e.generator(ctx, hp, network)
    return network if network is not None else networks.default_network(ctx)


def build_method(ctx: BuildCtx, parts: list, hp, model: Model):
    """The method of a composition: each part's factory applied, behind
    the current-batch cross-entropy (:func:`jcl.methods.compose`)."""
    entries = [catalog.entry(p) for p in parts]
    own = any(e.own_objective for e in entries)
    return compose(*((e.name, e.build(ctx, hp, model)) for e in entries),
                   objective=not own)


def build_learner(protocol, spec, parts: list, *, hidden: tuple,
                  iters: int, batch: int, gen_hidden=None,
                  static_max: dict | None = None,
                  epochs: int | None = None, reinit: bool = False) -> Learner:
    """The learner of a method composition on a protocol.

    Args:
      protocol: the task sequence. spec: its named defaults
        (:func:`jcl.tasks.catalog.protocol_spec`).
      parts: the composition's method names (:func:`jcl.methods.parse`).
      hidden: the classifier's hidden layers; gen_hidden: the
        generator's (``None``: ``hidden``).
      iters: steps per task. batch: the minibatch size.
      static_max: the largest value of each hyperparameter over the rows
        that will be vmapped together (default: the defaults); those that
        set a shape (GR's ``gr.replay_size``) draw at that size and mask
        the rest.
      epochs: passes over each task's data instead of ``iters`` steps.
      reinit: fresh trainable parameters before every task after the
        first (:class:`jcl.training.learner.Learner`).
    """
    if epochs is not None:
        if epochs < 1:
            raise ConfigError(f'epochs per task must be >= 1, got {epochs}')
    elif iters < 1:
        raise ConfigError(f'iterations per task must be >= 1, got {iters}')
    if batch < 1:
        raise ConfigError(f'batch size must be >= 1, got {batch}')
    catalog.check_scenario(parts, protocol.scenario)
    static = {**catalog.default_hparams(parts, lr=1.0, protocol=protocol.name,
                                        scenario=protocol.scenario,
                                        batch=batch), **(static_max or {})}
    ctx = BuildCtx(protocol, spec, batch, tuple(hidden),
                   None if gen_hidden is None else tuple(gen_hidden), static)
    entries = [catalog.entry(p) for p in parts]
    return Learner(lambda hp: build_model(ctx, parts, hp),
                   lambda hp, model: build_method(ctx, parts, hp, model),
                   make_optimizer=OPTIMIZERS[spec.optimizer],
                   prepare=protocol.prepare, num_steps=iters,
                   batch_size=batch, epochs=epochs, reinit=reinit,
                   reset_optimizer=spec.reset_optimizer or any(
                       e.reset_optimizer for e in entries),
                   bank_slices=all(e.one_bank for e in entries))
