"""What a generative model replays, as one image: a row per class.

>>> import numpy as np
>>> tile(np.ones((2, 3, 16)), side=4).shape   # 2 classes x 3 samples
(8, 12)
"""

import jax
import numpy as np

from jcl.analysis.quality import class_samples, gate_masks_of


def tile(samples: np.ndarray, side: int) -> np.ndarray:
    """``[classes, n, side * side]`` values in [0, 1] -> uint8 ``[classes
    * side, n * side]`` (a row of ``n`` images per class)."""
    c, n = samples.shape[:2]
    grid = np.asarray(samples).reshape(c, n, side, side).transpose(
        0, 2, 1, 3).reshape(c * side, n * side)
    return (np.clip(grid, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def sample_grid(model, params, model_state, key, classes, per_class: int,
                num_outputs: int):
    """Decoded samples of ``classes`` (``per_class`` each) of a model with
    a generator, tiled; ``None`` for a model without one or whose inputs
    are not square grey images. A gated decoder decodes each class with
    its gate (a class's, or its task's where the gates are per task)."""
    if not {'draw', 'decode', 'to_input', 'prior'} <= set(model.views):
        return None
    gates = gate_masks_of(model_state)
    groups = None if gates is None else gates[0].shape[0]

    def group_of(c):
        if groups is None or groups == num_outputs:
            return c
        return c // max(1, num_outputs // groups)

    got = np.asarray(jax.device_get(class_samples(
        model, params, model_state, key, classes, per_class, group_of)))
    side = int(round(got.shape[-1] ** 0.5)) if got.ndim == 3 else 0
    if not side or side * side != got.shape[-1]:
        return None
    return tile(got, side)
