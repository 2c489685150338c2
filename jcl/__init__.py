"""jcl: continual learning in JAX.

The public API on one screen::

    jcl.Model, jcl.make_model                         # the model interface
    jcl.Method, jcl.make_method, jcl.identity         # the method interface
    jcl.chain, jcl.named_chain, jcl.scale, jcl.masked,
    jcl.replay_weighted                               # combinators
    jcl.Batch, jcl.TaskCtx, jcl.Snapshot, jcl.Forward,
    jcl.Step, jcl.TaskEnd, jcl.CLState                # records
    jcl.Learner, jcl.init_state, jcl.train_task,
    jcl.train_chunk, jcl.finish_task                  # compiled training
    jcl.compile_run, jcl.run_seeds                    # seeds as a vmap axis
    jcl.methods.*, jcl.models.*, jcl.data, jcl.protocols, jcl.catalog,
    jcl.datasets, jcl.evaluate, jcl.stream
"""

from jcl import (
    catalog,
    combine,
    data,
    datasets,
    evaluate,
    fisher,
    learner,
    losses,
    methods,
    models,
    protocols,
    runner,
    stream,
    sweep,
    train,
    tree,
)
from jcl.combine import (
    chain,
    current_weight,
    masked,
    named_chain,
    replay_weight,
    replay_weighted,
    scale,
)
from jcl.errors import ConfigError, DataError, JclError, OutputError
from jcl.learner import Learner, init_state
from jcl.method import Method, identity, make_method
from jcl.model import Model, make_model
from jcl.runner import RunResult, run_seeds
from jcl.sweep import compile_run
from jcl.train import finish_task, train_chunk, train_task
from jcl.types import (
    Batch,
    CLState,
    Forward,
    Snapshot,
    Step,
    TaskCtx,
    TaskEnd,
)

__version__ = '0.2.0'

__all__ = [
    'Batch', 'CLState', 'ConfigError', 'DataError', 'Forward', 'JclError',
    'Learner', 'Method', 'Model', 'OutputError', 'RunResult', 'Snapshot',
    'Step', 'TaskCtx', 'TaskEnd', 'catalog', 'chain', 'combine',
    'compile_run', 'current_weight', 'data', 'datasets', 'evaluate',
    'finish_task', 'fisher', 'identity', 'init_state', 'learner', 'losses',
    'make_method', 'make_model', 'masked', 'methods', 'models',
    'named_chain', 'protocols', 'replay_weight', 'replay_weighted',
    'run_seeds', 'runner', 'scale', 'stream', 'sweep', 'train', 'train_chunk',
    'train_task', 'tree',
]
