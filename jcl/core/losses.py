"""Per-example losses. Every function returns shape ``[B]``; callers
average. Output masking implements the scenarios: inactive units get a
large negative logit, which is exactly a softmax over the active units.
"""

import jax
import jax.numpy as jnp

NEG = -1e9  # finite, so 0 * NEG stays 0 in soft-target products


def mask_logits(logits, mask):
    """Sets inactive outputs to a large negative value.

    Args:
      logits: ``[B, C]``. mask: bool ``[B, C]`` or ``[C]``.
    """
    return jnp.where(mask, logits, NEG)


def cross_entropy(logits, labels, mask):
    """Softmax cross-entropy over the active outputs.

    Args:
      logits: float ``[B, C]``; labels: int ``[B]``; mask: bool ``[B, C]``.

    Returns:
      ``[B]`` negative log-likelihoods.
    """
    logp = jax.nn.log_softmax(mask_logits(logits, mask))
    return -jnp.take_along_axis(logp, labels[:, None], axis=1)[:, 0]


def distillation(student_logits, teacher_logits, mask, temperature=2.0,
                 teacher_mask=None, class_mean=0.0):
    """Knowledge distillation with temperature, scaled by ``T**2``.

    ``T**2 * sum_c p_teacher(c; T) * -log p_student(c; T)`` over the
    active outputs (Hinton et al. 2015; the cross-entropy form used by the
    BI-R reference, which differs from the KL only by the teacher entropy,
    a constant for the student).

    Args:
      student_logits, teacher_logits: float ``[B, C]``.
      mask: bool ``[B, C]`` or ``[C]``, the student's active outputs.
      temperature: ``T``.
      teacher_mask: the teacher's active outputs (default: ``mask``); a
        subset of ``mask``. Outputs active for the student only get
        teacher probability 0 (the BI-R reference's zero padding of the
        previous model's fewer classes).
      class_mean: 1 divides by the number of the student's active outputs
        (the mean over classes instead of the sum: the NMI code's
        normalisation before its May 2019 fix, commit 26f00db); 0 keeps the
        sum. May be a tracer.

    Returns:
      ``[B]`` losses.
    """
    t = temperature
    if teacher_mask is None:
        teacher_mask = mask
    target = jax.nn.softmax(mask_logits(teacher_logits, teacher_mask) / t)
    target = jax.lax.stop_gradient(target)
    logp = jax.nn.log_softmax(mask_logits(student_logits, mask) / t)
    kd = -(t ** 2) * jnp.sum(target * jnp.where(mask, logp, 0.0), axis=-1)
    n = jnp.sum(jnp.broadcast_to(mask, logp.shape), axis=-1)
    return kd / jnp.where(class_mean > 0, n, 1)


def gaussian_kl(mu, logvar):
    """KL( N(mu, exp(logvar)) || N(0, I) ), summed over latent dims.

    Returns:
      ``[B]``.
    """
    return 0.5 * jnp.sum(jnp.exp(logvar) + mu ** 2 - 1.0 - logvar, axis=-1)


def bernoulli_recon(logits, x):
    """Binary cross-entropy of pixels ``x`` in [0, 1] under Bernoulli
    ``sigmoid(logits)``, summed over pixels. Returns ``[B]``."""
    return jnp.sum(jnp.maximum(logits, 0) - logits * x
                   + jnp.log1p(jnp.exp(-jnp.abs(logits))), axis=-1)


def gaussian_recon(pred, x):
    """Squared error summed over features (Gaussian, unit variance, up to
    constants). Returns ``[B]``."""
    return jnp.sum((pred - x) ** 2, axis=-1)


def accuracy(logits, labels, mask):
    """``[B]`` 1.0 where the arg-max over active outputs is the label."""
    pred = jnp.argmax(mask_logits(logits, mask), axis=-1)
    return (pred == labels).astype(jnp.float32)


def log_normal(z, mean, logvar):
    """``log N(z; mean, exp(logvar))`` summed over the last axis, without
    the ``2 pi`` constant (it cancels in ``log q - log p``)."""
    return -0.5 * jnp.sum(logvar + jnp.square(z - mean) * jnp.exp(-logvar),
                          axis=-1)
