"""Optimisers of the trainable leaves, one optax transform per group.

The model labels every parameter leaf with a group name
(:attr:`jcl.model.Model.labels`); frozen leaves never reach the optimiser.
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


def adam(hp, labels) -> optax.GradientTransformation:
    """Adam(``hp['lr']``, 0.9, 0.999) per group of trainable leaves.

    Args:
      hp: scalar hyperparameters (``'lr'``, optionally ``'<group>.lr'``);
        values may be tracers.
      labels: group names of the trainable leaves (``None`` holes at
        frozen ones), see :func:`jcl.model.trainable_labels`.
    """
    groups = sorted(set(jax.tree.leaves(labels)))
    rates = {g: hp.get(f'{g}.lr', hp['lr']) for g in groups}
    if len(groups) <= 1:
        return optax.adam(rates[groups[0]] if groups else hp['lr'], 0.9,
                          0.999)
    return optax.multi_transform(
        {g: optax.adam(rates[g], 0.9, 0.999) for g in groups}, labels)
