"""Optimisers of the trainable leaves, one optax transform per group.

The model labels every parameter leaf with a group name
(:attr:`jcl.core.model.Model.labels`); frozen leaves never reach the optimiser.
One group is plain Adam; several are an ``optax.multi_transform`` with one
Adam each, whose learning rate is ``hp['<group>.lr']`` where given and
``hp['lr']`` otherwise. Adam acts leaf by leaf, so one Adam over all
groups equals one Adam per group with the same settings.

>>> import jax.numpy as jnp
>>> tx = adam({'lr': 1e-3}, {'w': 'params', 'b': 'params'})
>>> state = tx.init({'w': jnp.ones(2), 'b': jnp.zeros(1)})
"""

import jax
import optax


def per_group(make, hp, labels) -> optax.GradientTransformation:
    """``make(lr)`` for each group of trainable leaves (one transform when
    there is one group), with ``hp['<group>.lr']`` or ``hp['lr']``."""
    groups = sorted(set(jax.tree.leaves(labels)))
    rates = {g: hp.get(f'{g}.lr', hp['lr']) for g in groups}
    if len(groups) <= 1:
        return make(rates[groups[0]] if groups else hp['lr'])
    return optax.multi_transform({g: make(rates[g]) for g in groups},
                                 labels)


def sgd(hp, labels) -> optax.GradientTransformation:
    """Plain SGD (no momentum, no weight decay) per group (mammoth's
    optimiser of the DER paper's experiments)."""
    return per_group(optax.sgd, hp, labels)


def adam(hp, labels) -> optax.GradientTransformation:
    """Adam(``hp['lr']``, 0.9, 0.999) per group of trainable leaves.

    Args:
      hp: scalar hyperparameters (``'lr'``, optionally ``'<group>.lr'``);
        values may be tracers.
      labels: group names of the trainable leaves (``None`` holes at
        frozen ones), see :func:`jcl.core.model.trainable_labels`.
    """
    return per_group(lambda lr: optax.adam(lr, 0.9, 0.999), hp, labels)


OPTIMIZERS = {'adam': adam, 'sgd': sgd}
