"""Pins XLA:CPU to one thread for timed runs; call before importing jax
(the flags are read when the backend starts)."""

import os

FLAGS = ' --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'


def pin(threads: int):
    """With ``threads == 1``, appends the one-thread flags to XLA_FLAGS."""
    if threads == 1:
        os.environ['XLA_FLAGS'] = os.environ.get('XLA_FLAGS', '') + FLAGS
