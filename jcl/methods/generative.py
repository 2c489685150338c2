"""Training a generative model on the current data: the VAE objective.

The generator (a model's ``'mu'``/``'logvar'`` outputs and its
``'decode'`` and ``'reconstruction'`` views) is trained on the current
batch with the negative ELBO per input dimension, from the step's shared
forward pass. Replayed data adds the same objective
(:func:`jcl.methods.replay.generative_replay`).

>>> import jax, jax.numpy as jnp
>>> from jcl.models import mlp_classifier, paired, vae_model
>>> from jcl.types import Batch, Forward, TaskCtx
>>> m = paired(mlp_classifier((8,), num_outputs=2, input_dim=5),
...            vae_model((8,), latent=3, input_dim=5))
>>> params, state = m.init(jax.random.PRNGKey(0))
>>> x = jnp.full((4, 5), 0.5)
>>> out, _ = m.apply(params, state, x, jnp.zeros(4, jnp.int32), train=True)
>>> fwd = Forward(params, state, Batch(x, None, None), out, {})
>>> terms = generator_loss(m).loss((), fwd, TaskCtx(0, jax.random.PRNGKey(1),
...                                                 None))[0]
>>> sorted(terms)
['loss']
"""

import jax.numpy as jnp

from jcl import losses
from jcl.method import Method, make_method, stream
from jcl.model import Model, view
from jcl.models.vae import reparameterize


def negative_elbo(model: Model, params, model_state, outputs, x, key):
    """Per-example negative ELBO divided by the input size ``D``.

    ``(recon(decode(z), x) + KL(N(mu, exp(logvar)) || N(0, I))) / D``
    with one reparameterised sample ``z`` of the posterior in
    ``outputs`` (the references' mean-over-pixels reconstruction plus the
    KL per pixel).

    Returns:
      ``[B]``.
    """
    mu, logvar = outputs['mu'], outputs['logvar']
    z = reparameterize(key, mu, logvar)
    out = view(model, 'decode', 'the generator loss')(params, model_state,
                                                       z)
    recon = model.views['reconstruction'](out, x)
    dim = x.reshape(x.shape[0], -1).shape[-1]
    return (recon + losses.gaussian_kl(mu, logvar)) / dim


def generator_loss(model: Model) -> Method:
    """The generator's objective on the current batch.

    Args:
      model: a model with ``'mu'``/``'logvar'`` outputs and ``'decode'``
        and ``'reconstruction'`` views (:func:`jcl.models.paired`).

    Returns:
      A stateless method with one term, ``'loss'``: the batch mean of
      :func:`negative_elbo`.
    """
    view(model, 'decode', 'the generator loss')

    def loss(mstate, fwd, ctx):
        del mstate  # unused
        per = negative_elbo(model, fwd.params, fwd.model_state,
                            fwd.outputs, fwd.batch.x, stream(ctx, 'gen'))
        return {'loss': jnp.mean(per)}

    return make_method(loss=loss)


