"""The learner: the static description of an experiment, and the carry
it starts from.

``Learner`` says how to build the model, the method and the optimiser
from hyperparameters (which may be vmapped tracers), how to prepare raw
inputs, and how many steps a task takes; :func:`init_state` makes the
carry before the first task.

>>> import jax
>>> from jcl.methods import supervised
>>> from jcl.models import mlp_classifier
>>> learner = Learner(
...     make_model=lambda hp: mlp_classifier((8,), num_outputs=2,
...                                          input_dim=4),
...     make_method=lambda hp, model: supervised(),
...     num_steps=10, batch_size=4)
>>> state = init_state(learner, {'lr': 1e-3}, jax.random.PRNGKey(0))
>>> sorted(state.params)
['Dense_0', 'Dense_1']
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jcl.core import tree
from jcl.core.errors import ConfigError
from jcl.core.model import Model, trainable_labels, trainable_mask
from jcl.core.records import CLState, Snapshot, TaskCtx
from jcl.tasks.protocols import pixels
from jcl.training import banks
from jcl.training.optim import adam

REINIT = 0x5E1D   # fold_in tag of the re-initialisation draw


class Learner(NamedTuple):
    """The static description of a continual learner.

    Attributes:
      make_model: ``hp -> Model`` (numeric hp may be tracers, e.g. XdG's
        proportion).
      make_method: ``(hp, model) -> Method``.
      make_optimizer: ``(hp, labels) -> optax transform`` of the trainable
        leaves (:func:`jcl.training.optim.adam`).
      prepare: the protocol's ``raw inputs -> model inputs``.
      num_steps: optimisation steps per task (fused path), each on a
        minibatch drawn uniformly with replacement.
      batch_size: current-task minibatch size.
      reset_optimizer: start every task with a fresh optimiser state (the
        reference's ``adam_reset``; separate networks need it).
      epochs: if set, each task is this many passes over its data instead
        (shuffled without replacement, incomplete last batch dropped; a
        task's number of steps follows its size), ``num_steps`` unused.
      augment: ``(key, x) -> x`` applied to the prepared current batch in
        training (e.g. :func:`jcl.training.augment.crop_and_flip`), or ``None``.
      reinit: draw the trainable parameters afresh (and reset the
        optimiser) before every task after the first, so that what a
        network knows of earlier tasks comes from replay alone (the BI-R
        paper's Fig. 4); frozen leaves, model state (gates) and the
        method's state (the teacher) are kept.
      bank_slices: train only the current task's row of the model's
        per-task banks (:mod:`jcl.training.banks`): for methods whose losses see
        the current task's examples alone; needs ``reset_optimizer``.
    """

    make_model: Callable
    make_method: Callable
    make_optimizer: Callable = adam
    prepare: Callable = pixels
    num_steps: int = 1
    batch_size: int = 1
    reset_optimizer: bool = False
    epochs: int | None = None
    augment: Callable | None = None
    reinit: bool = False
    bank_slices: bool = False


def task_steps(learner: Learner, width: int) -> int:
    """Steps of one compiled task on data ``width`` entries wide (with
    epochs: the upper bound over tasks; smaller tasks skip the rest)."""
    if learner.epochs is None:
        return learner.num_steps
    return learner.epochs * (width // learner.batch_size)


class Parts(NamedTuple):
    """What a learner builds from one row's hyperparameters.

    Attributes:
      model: the :class:`jcl.core.model.Model`. method: the
        :class:`jcl.core.method.Method`. tx: the optax transform of the
        trainable leaves. mask: a tree of bools like the parameters,
        ``True`` at trainable leaves. banked: the banks trained by row
        (:mod:`jcl.training.banks`), or ``None``.
    """

    model: Model
    method: object
    tx: optax.GradientTransformation
    mask: object
    banked: object


def parts(learner: Learner, hp, params, lr_scale=None) -> Parts:
    """The model, method and optimiser of ``learner`` at ``hp``.

    Args:
      learner: the static learner.
      hp: a dict of scalar hyperparameters (may be tracers); ``'lr'``, the
        learning rate, is required by the optimiser.
      params: any carry's parameters (they fix the trainable/frozen
        split).
      lr_scale: a multiplier of the learning rate (a schedule), or
        ``None``.
    """
    banks.check(learner)
    if 'lr' not in hp:
        raise ConfigError("the hyperparameters need 'lr', the optimiser's "
                          f'learning rate (got {", ".join(sorted(hp))})')
    model = learner.make_model(hp)
    method = learner.make_method(hp, model)
    if lr_scale is not None:
        hp = {**hp, 'lr': hp['lr'] * lr_scale}
    tx = learner.make_optimizer(hp, trainable_labels(model, params))
    banked = (banks.banked_mask(model, params) if learner.bank_slices
              else None)
    return Parts(model, method, tx, trainable_mask(model, params), banked)


def opt_init(built: Parts, params):
    """A fresh optimiser state of the trainable leaves (of one bank row
    where banks are sliced: every row has the same shape, row 0 is
    taken)."""
    trainable, _ = tree.partition(params, built.mask)
    return built.tx.init(banks.take(trainable, built.banked, 0))


def init_state(learner: Learner, hp, key, pretrained=None) -> CLState:
    """The carry before the first task.

    Args:
      learner: the static learner. hp: dict of scalar hyperparameters.
      key: this run's PRNG key (one seed).
      pretrained: ``None``, or ``{'params': flat, 'model_state': flat}``
        (``{key path: array}``, e.g.
        :func:`jcl.models.backbone.pretrained_overlay`): leaves that
        replace the drawn initialisation before the method sees it.
    """
    k_params, _, k_method, k_run = jax.random.split(key, 4)
    model = learner.make_model(hp)
    params, model_state = model.init(k_params)
    if pretrained is not None:
        params = tree.overlay(params, pretrained['params'])
        model_state = tree.overlay(model_state, pretrained['model_state'])
    built = parts(learner, hp, params)
    mstate = built.method.init(Snapshot(params, model_state),
                               TaskCtx(jnp.int32(0), k_method, None))
    return CLState(params, model_state, opt_init(built, params), mstate,
                   jnp.zeros((), jnp.int32), k_run)


def begin_task(learner: Learner, state: CLState, hp, task_id=None) -> CLState:
    """The carry at a task's first step: with a fresh optimiser state if
    the learner resets it at every task, and fresh trainable parameters
    after the first task (``task_id`` > 0) if it re-initialises them."""
    if not (learner.reset_optimizer or learner.reinit):
        return state
    built = parts(learner, hp, state.params)
    params = state.params
    if learner.reinit:
        fresh, _ = built.model.init(jax.random.fold_in(state.key, REINIT))
        keep = jnp.asarray(task_id) == 0
        params = jax.tree.map(
            lambda old, new, train: jnp.where(keep, old, new) if train
            else old, state.params, fresh, built.mask)
    return state._replace(params=params,
                          opt_state=opt_init(built, params))
