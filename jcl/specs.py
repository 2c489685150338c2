"""The description of a command-line method: its needs and its parts.

A :class:`MethodSpec` describes a method by its needs, never by protocol
names: which model it needs (:class:`ModelNeeds`), which data (all tasks
so far, for Joint), its hyperparameters with defaults and checks, the
scenarios it is defined for, and how to build its members, each in its
role (:class:`Members`: current data, replayed data, other) for
:func:`jcl.combine.replay_weighted`. The table of them is
:data:`jcl.registry.METHODS`.
"""

from typing import Callable, NamedTuple


class ModelNeeds(NamedTuple):
    """What a method asks of the model.

    Attributes:
      xdg: the hyperparameter holding XdG's gated proportion, or ``None``.
      generator: ``''`` (none), ``'vae'`` (a VAE beside the classifier:
        generative replay), ``'separate'`` (a VAE with BI-R's options
        beside the classifier) or ``'rtf'`` (one model: the classifier on
        the encoder, replay through feedback).
      conditional: the generator's prior has one mode per class.
      gates: the decoder's gates by ``'class'`` or ``'task'`` (``'none'``).
      gate_prop: the hyperparameter holding the gated proportion.
      separate: one network per task instead of one shared network.
      backbone: on a backbone protocol (a ResNet), the mode of
        :func:`jcl.models.backbone.resnet_model` (``''``: ``'finetune'``).
    """

    xdg: str | None = None
    generator: str = ''
    conditional: bool = False
    gates: str = 'none'
    gate_prop: str | None = None
    separate: bool = False
    backbone: str = ''


class Members(NamedTuple):
    """A method's members by role: ``(name, Method)`` lists."""

    current: list = []
    replay: list = []
    other: list = []


class BuildCtx(NamedTuple):
    """What a method builder may use."""

    model: object          # the jcl.model.Model
    data: object           # the jcl.protocols.Protocol trained on
    batch: int
    protocol: str          # for per-protocol defaults of static values
    static_max: dict       # hp name -> largest value over vmapped rows

    @property
    def num_tasks(self) -> int:
        return self.data.num_tasks

    def buffer_layout(self) -> dict:
        """The keyword arguments of a class-balanced buffer method."""
        return dict(prepare=self.data.prepare,
                    input_shape=tuple(self.data.train.images.shape[1:]),
                    dtype=self.data.train.images.dtype,
                    num_tasks=self.data.num_tasks,
                    classes_per_task=self.data.classes_per_task)


def _nothing(ctx, hp):
    del ctx, hp  # unused
    return Members()


class MethodSpec(NamedTuple):
    """A named method of the command line.

    Attributes:
      build: ``(ctx: BuildCtx, hp) -> Members``.
      defaults: ``(protocol, scenario, batch) -> {hp name: default}``.
      checks: hyperparameter name -> (predicate, requirement text).
      model: the model the method needs, or ``static -> ModelNeeds`` (a
        function of the one-value-per-run hyperparameters).
      joint: trains on the data of all tasks so far.
      scenarios: the scenarios the method is defined for.
      reset_optimizer: fresh optimiser state at every task start.
      static: hyperparameters that set a shape or a loop length (one value
        per run: settable with ``--set``, not a ``--grid`` axis).
      own_objective: brings its own objective on the current data (the
        cross-entropy member is left out).
      one_bank: every loss sees the current task's examples alone, so
        only the current task's row of a model's per-task banks trains
        (a composition of such methods sets ``Learner.bank_slices``).
    """

    build: Callable = _nothing
    defaults: Callable = lambda p, s, b: {}  # noqa: E731
    checks: dict = {}
    model: ModelNeeds | Callable = ModelNeeds()
    joint: bool = False
    scenarios: tuple = ('task', 'domain', 'class')
    reset_optimizer: bool = False
    static: tuple = ()
    own_objective: bool = False
    one_bank: bool = False


NONNEG = (lambda v: v >= 0, 'must be >= 0')
POSITIVE = (lambda v: v > 0, 'must be > 0')
UNIT = (lambda v: 0 <= v < 1, 'must be in [0, 1)')
SWITCH = (lambda v: v in (0, 1), 'must be 0 or 1')
SAMPLES = (lambda v: v >= 0 and float(v).is_integer(),
           'must be a whole number of examples (0: the whole task)')
REPLAY_SIZE = (lambda v: v >= 1 and float(v).is_integer() and v <= 1 << 16,
               'must be a whole number of replayed inputs, 1..65536')

BUDGET = (lambda v: v >= 1 and float(v).is_integer(),
          'must be a whole number of examples >= 1')
