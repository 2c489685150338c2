"""Context-dependent gating (XdG; Masse et al. 2018), Task-IL only.

XdG is a change of architecture, not a loss: per task and hidden layer a
fixed random subset of the units is gated. As a :class:`jcl.Method` it only
brings the gates (``params['gates']``, frozen), which the classifier
applies by each example's task; it composes with any other method
(``ewc+xdg``).
"""

from typing import Sequence

from jcl.base import Method, make_method
from jcl.models.classifier import xdg_gates


def xdg(hidden: Sequence[int], *, num_tasks: int, proportion) -> Method:
    """Adds XdG gates for every task and hidden layer.

    Args:
      hidden: the classifier's hidden layer sizes.
      num_tasks: number of tasks (gates are drawn for all up front).
      proportion: fraction of each layer's units gated off per task (may
        be a tracer: a grid over it is one vmapped program).

    Returns:
      A method with no loss terms whose ``extend_params`` adds
      ``params['gates']``: per layer a float ``[num_tasks, units]`` mask,
      exactly ``round(proportion * units)`` zeros per task.

    Example::

        m = xdg((400, 400), num_tasks=5, proportion=0.9)
        params = m.extend_params({'classifier': p}, key)
    """
    def extend_params(params, key):
        return {**params, 'gates': xdg_gates(key, hidden,
                                             num_tasks=num_tasks,
                                             proportion=proportion)}

    return make_method(loss=lambda params, mstate, batch, ctx: {},
                       extend_params=extend_params)
