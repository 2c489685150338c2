"""Training a generative model: the VAE objective, plain or conditional.

A generator is a model with posterior outputs (``'mu'``, ``'logvar'``)
and the views ``'decode'`` ``(params, state, z, group_weights) ->
logits``, ``'reconstruction'`` ``(logits, x) -> [B]`` and ``'prior'``
(``None``: N(0, I); else a mixture with one mode per class). The
objective per example is the references' negative ELBO per input
dimension: ``(reconstruction + variational term) / D``, the variational
term the analytic KL to N(0, I), or, with a mixture prior, the one-sample
estimate ``log q(z|x) - log p(z)`` (constants dropped) with ``p`` the
label's mode or a weighted mixture of modes.

>>> import jax, jax.numpy as jnp
>>> from jcl.models import mlp_classifier, paired, vae_model
>>> from jcl.core.records import Batch, Forward, TaskCtx
>>> m = paired(mlp_classifier((8,), num_outputs=2, input_dim=5),
...            vae_model((8,), latent=3, input_dim=5))
>>> params, state = m.init(jax.random.PRNGKey(0))
>>> x = jnp.full((4, 5), 0.5)
>>> out, _ = m.apply(params, state, x, jnp.zeros(4, jnp.int32), train=True)
>>> fwd = Forward(params, state, Batch(x, jnp.zeros(4, int), None), out, {})
>>> terms = generator_loss(m).loss((), fwd, TaskCtx(0, jax.random.PRNGKey(1),
...                                                 None))[0]
>>> sorted(terms)
['loss']
"""

import jax
import jax.numpy as jnp

from jcl.core import losses
from jcl.core.method import Method, make_method, member_key
from jcl.core.model import Model, view
from jcl.models.vae import reparameterize

GATES = ('none', 'class', 'task')


def variational(z, mu, logvar, prior, mode=None, weights=None):
    """The variational term per example: the analytic ``KL(q || N(0, I))``
    without a prior; with a mixture prior ``(mean, logvar)`` ``[K, L]``
    the one-sample ``log q(z|x) - log p(z)``, ``p`` the mode ``mode``
    (int ``[B]``) or the mixture weighted by ``weights`` ``[B, K]``."""
    if prior is None:
        return losses.gaussian_kl(mu, logvar)
    mean, lv = prior
    log_q = losses.log_normal(z, mu, logvar)
    if mode is not None:
        return log_q - losses.log_normal(z, mean[mode], lv[mode])
    per_mode = losses.log_normal(z[:, None, :], mean[None], lv[None])   # [B, K]
    log_p = jax.scipy.special.logsumexp(
        per_mode, axis=-1, b=jnp.maximum(weights, 0.0))
    return log_q - log_p


def negative_elbo(model: Model, params, model_state, outputs, x, key, *,
                  mode=None, weights=None, gates=None):
    """Per-example negative ELBO divided by the input size ``D``.

    Args:
      model: a generator (see module doc). params, model_state: its
        state. outputs: its forward pass on ``x`` (``'mu'``,
        ``'logvar'``). x: the inputs ``[B, D]``. key: for ``z``.
      mode: int ``[B]``, the prior mode of each example (mixture prior).
      weights: ``[B, K]`` mixture weights of the prior (instead of mode).
      gates: ``[B, G]`` decoder gate weights, or ``None``.

    Returns:
      ``[B]``.
    """
    mu, logvar = outputs['mu'], outputs['logvar']
    z = reparameterize(key, mu, logvar)
    out = view(model, 'decode', 'the generator loss')(params, model_state,
                                                       z, gates)
    recon = model.views['reconstruction'](out, x)
    prior = model.views['prior'](params) if 'prior' in model.views else None
    var = variational(z, mu, logvar, prior, mode, weights)
    dim = x.reshape(x.shape[0], -1).shape[-1]
    return (recon + var) / dim


def gate_groups(gate: str, y, task):
    """The gate group of each example: its class (``'class'``), its task
    (``'task'``), or ``None``."""
    if gate not in GATES:
        raise ValueError(f'gate must be one of {GATES}, got {gate!r}')
    return {'none': None, 'class': y, 'task': task}[gate]


def generator_loss(model: Model, *, conditional: bool = False,
                   gate: str = 'none', num_groups: int = 0) -> Method:
    """The generator's objective on the current batch.

    Args:
      model: a generator (see module doc), e.g. a classifier paired with a
        VAE (:func:`jcl.models.paired`) or a replay-through-feedback VAE.
      conditional: the prior's mode is each example's class (its target
        unit); else N(0, I) (static).
      gate: decoder gates by ``'class'``, ``'task'`` or ``'none'``.
      num_groups: classes or tasks the gates are drawn for.

    Returns:
      A stateless method with one term, ``'loss'``: the batch mean of
      :func:`negative_elbo`.
    """
    view(model, 'decode', 'the generator loss')
    gate_groups(gate, None, None)

    def loss(mstate, fwd, ctx):
        del mstate  # unused
        b = fwd.batch
        group = gate_groups(gate, b.y, b.task)
        per = negative_elbo(
            model, fwd.params, fwd.model_state, fwd.outputs, b.x,
            member_key(ctx, 'gen'), mode=b.y if conditional else None,
            gates=None if group is None else jax.nn.one_hot(group,
                                                            num_groups))
        return {'loss': jnp.mean(per)}

    return make_method(loss=loss)
