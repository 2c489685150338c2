"""Grids of hyperparameters: their points, the rows they make with the
seeds, and the point chosen on validation data.

>>> grid_points({'a': [1, 2], 'b': [3]})
[{'a': 1, 'b': 3}, {'a': 2, 'b': 3}]
>>> import numpy as np
>>> R_valid = np.zeros((2, 3, 2, 2)); R_valid[1, :, -1] = 0.9
>>> choose(R_valid)      # point 1 has the best final average accuracy
1
"""

import numpy as np

from jcl.analysis.evaluate import average_accuracy


def grid_points(grid: dict) -> list:
    """The cartesian product of a grid as a list of ``{name: value}``, the
    first name varying slowest."""
    points = [{}]
    for name, values in grid.items():
        points = [{**p, name: v} for p in points for v in values]
    return points


def rows(hparams: dict, points: list, seeds) -> list:
    """``[(hp, seed)]``: every grid point with every seed, point-major."""
    return [({**hparams, **pt}, s) for pt in points for s in seeds]


def static_max(rows_: list) -> dict:
    """The largest value of every hyperparameter over the rows: the
    shapes every row of one compiled program shares."""
    names = rows_[0][0]
    return {k: max(h[k] for h, _ in rows_) for k in names}


def choose(R_valid) -> int:
    """The grid point with the best mean (over seeds) final average
    accuracy on the validation data.

    Args:
      R_valid: ``[P, S, T, T]`` accuracy matrices on the validation split.
    """
    final = average_accuracy(np.asarray(R_valid))[..., -1]   # [P, S]
    return int(np.argmax(final.mean(axis=1)))
