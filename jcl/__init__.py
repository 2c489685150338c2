"""jcl: continual learning in JAX.

The public API on one screen::

    jcl.Method, jcl.make_method, jcl.identity        # the abstraction
    jcl.chain, jcl.named_chain, jcl.scale, jcl.masked  # combinators
    jcl.Batch, jcl.TaskCtx, jcl.CLState              # state containers
    jcl.Learner, jcl.init_state, jcl.train_task      # compiled training
    jcl.compile_run, jcl.run_seeds                   # seeds as a vmap axis
    jcl.methods.*, jcl.models.*, jcl.data, jcl.datasets, jcl.evaluate
"""

from jcl import (
                 combine,
                 data,
                 datasets,
                 evaluate,
                 losses,
                 methods,
                 models,
                 runner,
                 train,
                 tree,
)
from jcl.base import Method, identity, make_method
from jcl.combine import (
                 chain,
                 current_weight,
                 masked,
                 named_chain,
                 replay_weight,
                 scale,
)
from jcl.errors import ConfigError, DataError, JclError, OutputError
from jcl.runner import RunResult, run_seeds
from jcl.train import Learner, compile_run, init_state, train_task
from jcl.types import Batch, CLState, TaskCtx

__version__ = '0.1.0'

__all__ = [
    'Batch', 'CLState', 'ConfigError', 'DataError', 'JclError', 'Learner',
    'Method', 'OutputError', 'RunResult', 'TaskCtx', 'chain', 'combine',
    'compile_run', 'current_weight', 'data', 'datasets', 'evaluate',
    'identity', 'init_state', 'losses', 'make_method', 'masked', 'methods',
    'models', 'named_chain', 'replay_weight', 'run_seeds', 'runner',
    'scale', 'train', 'train_task', 'tree',
]
