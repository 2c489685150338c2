"""A method of the catalogue: what ``jcl run --method NAME`` needs of it.

A :class:`MethodEntry` holds, in one place, how the command line turns a
method's hyperparameters into a :class:`jcl.Method` (its public factory,
applied), the hyperparameters' defaults per protocol and scenario, their
checks, which of them set a shape (one value per run), and what the
method asks of the model and the data. Built-in methods define their
entry beside their factory; a user's method does the same and registers
it (:func:`jcl.methods.register`).

>>> from jcl.methods import si
>>> default_of(si, 'xi')
0.1
>>> by_protocol({('split-mnist', 'class'): 5e3, 'class': 1.0}, 0.0)(
...     'permuted-mnist', 'class')
1.0
"""

import inspect
from typing import Callable, NamedTuple

SCENARIOS = ('task', 'domain', 'class')


class Check(NamedTuple):
    """A hyperparameter's requirement: ``ok(value)`` and its wording."""

    ok: Callable
    need: str


NONNEG = Check(lambda v: v >= 0, 'must be >= 0')
POSITIVE = Check(lambda v: v > 0, 'must be > 0')
UNIT = Check(lambda v: 0 <= v < 1, 'must be in [0, 1)')
SWITCH = Check(lambda v: v in (0, 1), 'must be 0 or 1')
SAMPLES = Check(lambda v: v >= 0 and float(v).is_integer(),
                'must be a whole number of examples (0: the whole task)')
REPLAY_SIZE = Check(
    lambda v: v >= 1 and float(v).is_integer() and v <= 1 << 16,
    'must be a whole number of replayed inputs, 1..65536')
BUDGET = Check(lambda v: v >= 1 and float(v).is_integer(),
               'must be a whole number of examples >= 1')


class BuildCtx(NamedTuple):
    """What an entry may use to build its method or its model.

    Attributes:
      protocol: the :class:`jcl.tasks.protocols.Protocol` trained on (its
        tasks, outputs, data layout and ``prepare``).
      settings: its :class:`jcl.tasks.catalog.ProtocolSpec` (the papers'
        defaults: the separate networks' size, the MLP's initialisation,
        the backbone).
      batch: the current-task minibatch size.
      hidden: the classifier's hidden layers.
      gen_hidden: the generator's hidden layers, or ``None`` (as
        ``hidden``).
      static: ``{hyperparameter: value}`` for the whole composition: the
        largest value over the rows vmapped together (a value that sets a
        shape is the same for all of them).
    """

    protocol: object
    settings: object
    batch: int
    hidden: tuple
    gen_hidden: tuple | None
    static: dict

    def size(self, name: str) -> int:
        """A shape-setting hyperparameter as an ``int``."""
        return int(self.static[name])

    @property
    def num_tasks(self) -> int:
        return self.protocol.num_tasks

    @property
    def num_outputs(self) -> int:
        return self.protocol.num_outputs

    def buffer_layout(self) -> dict:
        """The keyword arguments of a class-balanced buffer method
        (:func:`jcl.methods.er`): how raw examples look and are prepared,
        and the tasks' layout."""
        train = self.protocol.train
        return dict(prepare=self.protocol.prepare,
                    input_shape=tuple(train.images.shape[1:]),
                    dtype=train.images.dtype,
                    num_tasks=self.protocol.num_tasks,
                    classes_per_task=self.protocol.classes_per_task)


class MethodEntry(NamedTuple):
    """A named method of the command line.

    Attributes:
      name: the command-line name (``'online-ewc'``); its factory is
        ``jcl.methods.<name with _ for ->``.
      build: ``(ctx: BuildCtx, hp, model) -> Method``: the factory applied
        to the hyperparameters ``hp`` (a dict; numeric values may be
        tracers, shape-setting ones are read from ``ctx.size``).
      defaults: ``{hyperparameter: value}``, or ``(protocol, scenario,
        batch) -> {hyperparameter: value}`` where defaults depend on them.
        Names are ``'<prefix>.<name>'``; :func:`default_of` reads a
        factory's own default, so that none is written twice.
      checks: ``{hyperparameter: Check}``.
      static: the hyperparameters that set a shape or a loop length: one
        value per run (``--set``), not a ``--grid`` axis.
      network: ``(ctx, hp) -> Model``: the method's own network in place
        of the protocol's classifier (XdG's gates, separate networks, a
        ResNet trained another way), or ``None``. At most one part of a
        composition brings one.
      generator: ``(ctx, hp, network) -> Model``: the model with the
        method's generator (``network``: another part's, or ``None`` for
        the protocol's classifier), or ``None``. At most one part brings
        one.
      generators: whether another part's generator may be added to this
        part's network.
      scenarios: the scenarios the method is defined for.
      joint: trains on the data of all tasks so far.
      reset_optimizer: fresh optimiser state at every task start.
      own_objective: brings its own objective on the current data (the
        cross-entropy of :func:`jcl.methods.compose` is left out).
      one_bank: every loss sees the current task's examples alone, so only
        the current task's row of a model's per-task banks trains.
      exclusive: a role at most one part of a composition may take, or
        ``''``: two parts that change the gradient in the same way
        (``'gradient projection'``: A-GEM's and GEM's, the later of which
        would undo the earlier's constraint) are refused together.
      alone: combines with no other part (``+``): a method whose
        predictions come from a network of its own that the other parts'
        losses would not reach (GDumb, the generative classifier).
      schedule: ``spec -> {'iters': int, 'batch': int, 'lr': float}``
        (each key optional): the method's own defaults of the iterations
        per task, the minibatch size and the learning rate on a protocol
        (its :class:`jcl.tasks.catalog.ProtocolSpec`), where its paper
        trains it otherwise than the protocol's classifier; ``--iters``,
        ``--batch`` and ``--lr`` still override them. ``None``: the
        protocol's.
      summary: one line for ``jcl methods`` and the docs.
    """

    name: str
    build: Callable
    defaults: dict | Callable = {}
    checks: dict = {}
    static: tuple = ()
    network: Callable | None = None
    generator: Callable | None = None
    generators: bool = True
    scenarios: tuple = SCENARIOS
    joint: bool = False
    reset_optimizer: bool = False
    own_objective: bool = False
    one_bank: bool = False
    exclusive: str = ''
    alone: bool = False
    schedule: Callable | None = None
    summary: str = ''

    def default_values(self, protocol: str, scenario: str,
                       batch: int) -> dict:
        """The entry's defaults on a protocol and scenario."""
        got = self.defaults
        return dict(got(protocol, scenario, batch) if callable(got) else got)


def default_of(factory: Callable, name: str):
    """The default value of the keyword argument ``name`` of ``factory``
    (so that an entry's default is the factory's, written once)."""
    param = inspect.signature(factory).parameters[name]
    if param.default is inspect.Parameter.empty:
        raise TypeError(f'{factory.__name__}() has no default for {name!r}')
    return param.default


def by_protocol(values: dict, fallback):
    """Defaults from a table keyed ``(protocol, scenario)``, falling back
    to the scenario's entry, then to ``fallback``:
    ``(protocol, scenario) -> value``."""
    def get(protocol, scenario):
        return values.get((protocol, scenario),
                          values.get(scenario, fallback))
    return get
