"""What a generative model replays, as one image: a row per class.

:func:`grid_sampler` compiles, once per learner, the decoding of
``per_class`` samples of every class (each from its prior mode where the
model has a mixture prior, through its gate where the decoder is gated);
:func:`tile` lays a chosen set of classes out as one grey image.

>>> import numpy as np
>>> tile(np.ones((2, 3, 16)), side=4).shape   # 2 classes x 3 samples
(8, 12)
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jcl.analysis.quality import gate_masks_of

VIEWS = {'draw', 'decode', 'to_input', 'prior'}


def tile(samples: np.ndarray, side: int) -> np.ndarray:
    """``[classes, n, side * side]`` values in [0, 1] -> uint8 ``[classes
    * side, n * side]`` (a row of ``n`` images per class)."""
    c, n = samples.shape[:2]
    grid = np.asarray(samples).reshape(c, n, side, side).transpose(
        0, 2, 1, 3).reshape(c * side, n * side)
    return (np.clip(grid, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def grid_sampler(make_model, num_outputs: int, per_class: int, example_hp):
    """A jitted ``(hp, params, model_state, key) -> [num_outputs,
    per_class, D]`` of decoded samples of every class, or ``None`` for a
    model without a generator (``example_hp``: a row's hyperparameters as
    a hashable tuple of items, to build the model once). A decoder gated
    per task decodes class ``c`` with its task's gate."""
    if not VIEWS <= set(make_model(dict(example_hp)).views):
        return None

    def draw(hp, params, model_state, key):
        model = make_model(hp)
        classes = jnp.repeat(jnp.arange(num_outputs), per_class)
        prior = model.views['prior'](params)
        z = model.views['draw'](params, key, classes.shape[0],
                                classes if prior is not None else None)
        gates, w = gate_masks_of(model_state), None
        if gates is not None:
            groups = gates[0].shape[0]
            group = (classes if groups == num_outputs else
                     classes // max(1, num_outputs // groups))
            w = jax.nn.one_hot(group, groups)
        x = model.views['to_input'](model.views['decode'](
            params, model_state, z, w))
        return x.reshape((num_outputs, per_class) + x.shape[1:])

    return jax.jit(draw)


def sample_grid(sampler, hp, params, model_state, key, classes):
    """The tiled samples of ``classes`` (a ``[C * side, n * side]`` uint8
    image), or ``None`` where the inputs are not square grey images."""
    got = np.asarray(sampler(hp, params, model_state, key))[
        np.asarray(classes)]
    side = int(round(got.shape[-1] ** 0.5)) if got.ndim == 3 else 0
    if not side or side * side != got.shape[-1]:
        return None
    return tile(got, side)
