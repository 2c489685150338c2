"""Context-dependent gating (XdG; Masse et al. 2018), Task-IL.

XdG is a property of the network: per task and hidden layer a fixed
random proportion of the units is gated off (the gates are model state,
:class:`jcl.models.classifier.XdG`). :func:`xdg_model` builds that
network; :func:`xdg` is the method, which adds nothing to the
current-batch objective. Compose it with a penalty for the NMI code's
"XdG + EWC".

>>> m = xdg_model((8,), num_outputs=4, input_dim=6, num_tasks=2,
...               proportion=0.5)
>>> m.name
'mlp 6-8-4 with XdG'
"""

from typing import Sequence

from jcl.core.method import Method, identity
from jcl.core.model import Model
from jcl.methods import networks
from jcl.methods.entry import UNIT, MethodEntry, by_protocol
from jcl.models.classifier import XdG, mlp_classifier


def xdg() -> Method:
    """The XdG method: no terms of its own; the gating is the network's
    (:func:`xdg_model`)."""
    return identity()


def xdg_model(hidden: Sequence[int], *, num_outputs: int, input_dim: int,
              num_tasks: int, proportion, init: str = 'torch') -> Model:
    """The MLP classifier with XdG gates: ``proportion`` of each hidden
    layer's units gated off per task (may be a tracer, so a grid over it
    is one vmapped program)."""
    return mlp_classifier(hidden, num_outputs=num_outputs,
                          input_dim=input_dim, xdg=XdG(num_tasks, proportion),
                          init=init)


# The NMI code's values (params/param_values.py).
xdg_proportion = by_protocol({('split-mnist', 'task'): 0.9,
                              ('permuted-mnist', 'task'): 0.6}, 0.9)


def _network(ctx, hp):
    networks.no_backbone(ctx, 'XdG is')
    return xdg_model(ctx.hidden, num_outputs=ctx.num_outputs,
                     input_dim=networks.input_dim(ctx),
                     num_tasks=ctx.num_tasks,
                     proportion=hp['xdg.proportion'],
                     init=ctx.settings.init)


ENTRIES = [MethodEntry(
    'xdg', lambda ctx, hp, model: xdg(), network=_network,
    defaults=lambda p, s, b: {'xdg.proportion': xdg_proportion(p, s)},
    checks={'xdg.proportion': UNIT}, scenarios=('task',),
    summary='context-dependent gating (Masse et al. 2018)')]
