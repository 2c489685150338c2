"""Separate networks: one network per task (Task-IL), an upper bound
without interference. The networks of the NMI code are small MLPs whose
total size matches the shared network's; on a backbone protocol each
task fine-tunes its own copy of the ResNet.

>>> m = separate_model((4,), num_tasks=3, num_outputs=2, input_dim=5)
>>> m.name
'3 separate networks'
"""

from typing import Sequence

from jcl.core.method import Method, identity
from jcl.core.model import Model
from jcl.methods import networks
from jcl.methods.entry import MethodEntry
from jcl.models.classifier import separate_classifiers


def separate() -> Method:
    """Separate networks: no terms of its own; the networks are the
    model's (:func:`separate_model`), trained with the optimiser reset at
    every task so that each learns from its own task only."""
    return identity()


def separate_model(hidden: Sequence[int], *, num_tasks: int,
                   num_outputs: int, input_dim: int) -> Model:
    """One MLP ``input_dim - hidden... - num_outputs`` per task, each
    example through its own task's network."""
    return separate_classifiers(hidden, num_tasks=num_tasks,
                                num_outputs=num_outputs, input_dim=input_dim)


def _network(ctx, hp):
    del hp  # unused
    if ctx.settings.backbone:
        return networks.backbone_model(ctx, 'separate')
    return separate_model(ctx.settings.separate_hidden,
                          num_tasks=ctx.num_tasks,
                          num_outputs=ctx.num_outputs,
                          input_dim=ctx.protocol.input_shape[0])


ENTRIES = [MethodEntry(
    'separate', lambda ctx, hp, model: separate(), network=_network,
    generators=False, scenarios=('task',), reset_optimizer=True,
    one_bank=True, summary='a network per task (Task-IL upper bound)')]
