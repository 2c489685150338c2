"""The model interface: a network as pure functions, with model state.

In the spirit of Flax's ``TrainState`` with ``batch_stats``: parameters
are trained, the model state (BatchNorm statistics, fixed gates) is not;
``apply`` returns the new model state (changed in training mode only).

* ``init(key) -> (params, model_state)``;
* ``apply(params, model_state, x, task, *, train) -> (outputs,
  model_state)``, ``outputs`` a dict: ``'logits'`` ``[B, C]`` always,
  ``'features'`` (the input of the output layer), and for generative
  models ``'mu'`` and ``'logvar'`` (the posterior of ``x``);
* ``labels(params)``: a tree like ``params`` of group names, one per leaf;
  :data:`FROZEN` leaves are never trained (no gradient is taken), every
  other name is an optimiser group (``optax.multi_transform``);
* ``main(params)``: the parameters of the learner proper, which
  regularisers (EWC, SI) act on by default (a classifier paired with a
  generator: the classifier's);
* ``banked(params)`` (optional): a tree of bools like ``params``,
  ``True`` at per-task banks, leaves with a leading task axis whose row
  ``t`` only task ``t``'s examples use (see :mod:`jcl.training.banks`);
* ``views``: further named pure functions a method may need, e.g.
  ``'taps'`` (:class:`jcl.methods.fisher.DenseTaps`, EWC's fast Fisher) or
  ``'sample'`` (a generator's ``(params, model_state, key, n) -> x``).

>>> import jax, jax.numpy as jnp
>>> from jcl.models import mlp_classifier
>>> clf = mlp_classifier((8,), num_outputs=3, input_dim=4)
>>> params, state = clf.init(jax.random.PRNGKey(0))
>>> out, _ = clf.apply(params, state, jnp.ones((2, 4)),
...                    jnp.zeros(2, jnp.int32), train=False)
>>> out['logits'].shape, out['features'].shape
((2, 3), (2, 8))
"""

from typing import Callable, Mapping, NamedTuple

import jax

from jcl.core import tree
from jcl.core.errors import ConfigError
from jcl.core.records import Snapshot

FROZEN = 'frozen'
DEFAULT_GROUP = 'params'


class DenseTaps(NamedTuple):
    """What a dense network exposes for per-example gradients (EWC's fast
    Fisher, :func:`jcl.methods.fisher.fisher_diagonal`).

    Attributes:
      layers: ``params -> {name: {'kernel': [in, out], 'bias': [out]}}``,
        the dense layers (leaves of ``params``, not copies).
      apply: ``(params, model_state, x, task, perturbations) -> (logits,
        inputs)``: the network with zero perturbations
        ``perturbations[name] = {'pre', 'out'}`` (each ``[B, out]``) added
        to ``x @ W`` and to the layer output, also returning each layer's
        input ``inputs[name]`` ``[B, in]``.
    """

    layers: Callable
    apply: Callable


class Model(NamedTuple):
    """A network as pure functions (see the module docstring).

    Attributes:
      init: ``key -> (params, model_state)``.
      apply: ``(params, model_state, x, task, *, train) -> (outputs,
        model_state)``.
      labels: ``params -> tree of str`` (group per leaf; ``'frozen'``).
      main: ``params -> subtree`` the regularisers' default target.
      views: ``{name: function}`` further views.
      name: a short description for messages.
      banked: ``params -> tree of bool``, the per-task banks, or ``None``
        (the model has none).
    """

    init: Callable
    apply: Callable
    labels: Callable
    main: Callable
    views: Mapping[str, Callable]
    name: str = 'model'
    banked: Callable | None = None


def one_group(params):
    """``labels`` of a model whose parameters are all trained together."""
    return jax.tree.map(lambda _: DEFAULT_GROUP, params)


def whole(params):
    """``main`` of a model whose every parameter is the learner's."""
    return params


def make_model(*, init, apply, labels=one_group, main=whole, views=None,
               name='model', banked=None) -> Model:
    """Builds a :class:`Model`, defaulting what most models share: one
    optimiser group, no frozen leaves, every parameter the learner's, no
    per-task banks."""
    return Model(init, apply, labels, main, dict(views or {}), name, banked)


def logits(model: Model, snap: Snapshot, x, task):
    """The model's logits in evaluation mode (a teacher, a test batch)."""
    out, _ = model.apply(snap.params, snap.model_state, x, task,
                         train=False)
    return out['logits']


def view(model: Model, name: str, needed_by: str = 'this method'):
    """The view ``name`` of ``model``, or a clear error naming who needs
    it.

    >>> from jcl.models import mlp_classifier
    >>> view(mlp_classifier((4,), num_outputs=2, input_dim=3), 'sample',
    ...      'gr')
    Traceback (most recent call last):
    ...
    jcl.core.errors.ConfigError: gr needs a model with a 'sample' view; ...
    """
    if name not in model.views:
        have = ', '.join(sorted(model.views)) or 'none'
        raise ConfigError(f'{needed_by} needs a model with a {name!r} view; '
                          f'{model.name} has {have}')
    return model.views[name]


def trainable_mask(model: Model, params):
    """A tree of bools like ``params``: ``True`` where a leaf is trained."""
    return jax.tree.map(lambda g: g != FROZEN, model.labels(params))


def trainable_labels(model: Model, params):
    """The group names of the trainable leaves (``None`` at frozen ones),
    the ``param_labels`` of an ``optax.multi_transform``."""
    return jax.tree.map(lambda g: None if g == FROZEN else g,
                        model.labels(params))


def trainable_part(model: Model, select: Callable | None = None):
    """``params -> subtree``: ``select(params)`` (default ``model.main``)
    with its frozen leaves as ``None`` holes, the target of a parameter
    regulariser; ``select`` must also pick the same entries of the label
    tree (dict or attribute indexing does)."""
    select = model.main if select is None else select

    def pick(params):
        mask = jax.tree.map(lambda g: g != FROZEN,
                            select(model.labels(params)))
        return tree.partition(select(params), mask)[0]

    return pick
