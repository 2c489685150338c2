"""jcl: continual learning in JAX.

The public API on one screen::

    jcl.Method, jcl.make_method, jcl.identity, jcl.member_key  # methods
    jcl.Model, jcl.make_model, jcl.trainable_part              # models
    jcl.chain, jcl.named_chain, jcl.scale, jcl.masked,
    jcl.replayed, jcl.replay_weighted, jcl.compose             # composing
    jcl.Batch, jcl.TaskCtx, jcl.Snapshot, jcl.Forward,
    jcl.Step, jcl.TaskEnd, jcl.CLState                         # records
    jcl.over_task, jcl.weighted_powers, jcl.per_example_grads  # helpers
    jcl.Learner, jcl.init_state, jcl.train_task,
    jcl.train_chunk, jcl.finish_task                           # training
    jcl.run_sweep, jcl.SweepResult, jcl.run_seeds,
    jcl.compile_run, jcl.compile_programs                      # sweeps
    jcl.MetricLog                                              # logs
    jcl.register_method, jcl.MethodEntry, jcl.build_learner    # catalogue

and the rooms: ``jcl.core`` (the contracts), ``jcl.methods`` (every
method's factory), ``jcl.models``, ``jcl.datasets``, ``jcl.tasks``
(protocols and named task sequences), ``jcl.training``, ``jcl.sweep``,
``jcl.logs`` (metric logs: CSV, TensorBoard, W&B), ``jcl.analysis``,
``jcl.weights``, ``jcl.cli``.
"""

from jcl import (
    analysis,
    core,
    datasets,
    logs,
    methods,
    models,
    sweep,
    tasks,
    training,
    weights,
)
from jcl.analysis import evaluate
from jcl.core.combine import (
    chain,
    current_weight,
    masked,
    named_chain,
    replay_weight,
    replay_weighted,
    replayed,
    scale,
)
from jcl.core.errors import ConfigError, DataError, JclError, OutputError
from jcl.core.method import Method, identity, make_method, member_key
from jcl.core.model import Model, make_model, trainable_part
from jcl.core.over_task import over_task
from jcl.core.per_example import grads as per_example_grads
from jcl.core.per_example import weighted_powers
from jcl.core.records import (
    Batch,
    CLState,
    Forward,
    Snapshot,
    Step,
    TaskCtx,
    TaskEnd,
)
from jcl.logs import MetricLog
from jcl.methods import compose
from jcl.methods.assemble import build_learner
from jcl.methods.catalog import register as register_method
from jcl.methods.entry import MethodEntry
from jcl.sweep.loop import RunResult, run_seeds
from jcl.sweep.rows import compile_programs, compile_run
from jcl.sweep.run import SweepResult, run_sweep
from jcl.tasks import protocols
from jcl.training.learner import Learner, init_state
from jcl.training.task import finish_task, train_chunk, train_task

__version__ = '0.3.0'

__all__ = [
    'Batch', 'CLState', 'ConfigError', 'DataError', 'Forward', 'JclError',
    'Learner', 'Method', 'MethodEntry', 'Model', 'OutputError', 'RunResult',
    'Snapshot', 'Step', 'SweepResult', 'TaskCtx', 'TaskEnd', 'analysis',
    'build_learner', 'chain', 'compile_programs', 'compile_run', 'compose',
    'core', 'current_weight', 'datasets', 'evaluate', 'finish_task', 'identity',
    'init_state', 'make_method', 'make_model', 'masked', 'member_key',
    'methods', 'models', 'named_chain', 'over_task', 'per_example_grads',
    'protocols', 'register_method', 'replay_weight', 'replay_weighted',
    'MetricLog', 'replayed', 'run_seeds', 'run_sweep', 'scale', 'sweep',
    'tasks', 'logs',
    'train_chunk', 'train_task', 'trainable_part', 'training',
    'weighted_powers', 'weights',
]
