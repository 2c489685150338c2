"""Several processes (hosts) as one sweep, through ``jax.distributed``.

Every process runs the same program (JAX's multi-controller model): the
mesh of :func:`jcl.sweep.rows.row_mesh` spans the devices of all processes,
each process's devices train their share of the rows, and nothing is
communicated during training. Results are gathered to every process at
the end of a task (:func:`gather`), and only the first process writes
files and prints progress (:func:`is_main`).

A run is started the way JAX documents, one command per process::

    JAX_COORDINATOR_ADDRESS=10.0.0.1:1234 JAX_NUM_PROCESSES=2 \\
    JAX_PROCESS_ID=0 jcl run ...      # and JAX_PROCESS_ID=1 on the other

or with ``--coordinator``, ``--num-processes``, ``--process-id``; on
Slurm, Open MPI and Cloud TPU, ``--distributed`` lets JAX detect them.
Without any of these a run is one process.

>>> import numpy as np
>>> gather({'R': np.ones((2, 3))})['R'].shape      # one process: as is
(2, 3)
>>> is_main()
True
"""

import os

import jax
import numpy as np
from jax.experimental import multihost_utils

from jcl.core.errors import ConfigError

ENV = ('JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID')


def settings(coordinator=None, num_processes=None, process_id=None,
             auto=False):
    """The distributed settings from flags, then environment variables.

    Returns:
      ``None`` for a single-process run, else the keyword arguments of
      ``jax.distributed.initialize``. Raises :class:`ConfigError` on an
      incomplete or invalid set.
    """
    env = os.environ
    coordinator = coordinator or env.get(ENV[0])
    num_processes = _int(num_processes, ENV[1], 'number of processes')
    process_id = _int(process_id, ENV[2], 'process id')
    if not (auto or coordinator or num_processes is not None or
            process_id is not None):
        return None
    if not auto and None in (coordinator, num_processes, process_id):
        raise ConfigError(
            'a multi-process run needs the coordinator address, the number '
            'of processes and this process\'s id (--coordinator, '
            '--num-processes, --process-id, or $' + ', $'.join(ENV) +
            '); --distributed detects them on Slurm, Open MPI and TPU')
    if num_processes is not None and num_processes < 1:
        raise ConfigError(f'--num-processes must be >= 1, not '
                          f'{num_processes}')
    if process_id is not None and num_processes is not None and not (
            0 <= process_id < num_processes):
        raise ConfigError(f'--process-id must be in 0..{num_processes - 1},'
                          f' not {process_id}')
    return {'coordinator_address': coordinator,
            'num_processes': num_processes, 'process_id': process_id}


def _int(value, var, what):
    if value is not None:
        return int(value)
    text = os.environ.get(var)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f'${var} ({what}) must be an integer, not '
                          f'{text!r}') from None


def initialize(kwargs):
    """Joins the processes of a run (``kwargs`` from :func:`settings`).

    When a process dies, the others stop after the heartbeat timeout
    (``$JCL_HEARTBEAT_TIMEOUT`` seconds, default 60); the same command
    then resumes after the last task every process finished.
    """
    beat = _int(None, 'JCL_HEARTBEAT_TIMEOUT', 'heartbeat timeout') or 60
    try:
        jax.distributed.initialize(**kwargs,
                                   heartbeat_timeout_seconds=beat)
    except (RuntimeError, ValueError) as e:
        raise ConfigError(f'could not join the distributed run '
                          f'({kwargs}): {e}') from None


def is_main() -> bool:
    """Whether this process writes files and prints (process 0)."""
    return jax.process_index() == 0


def gather(tree):
    """Host copies of ``tree``'s arrays, whole on every process (rows
    held by other processes' devices included)."""
    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x,
                                                                tiled=True))
        return np.asarray(x)
    return jax.tree.map(one, tree)


def broadcast_bytes(data: bytes | None) -> bytes | None:
    """Process 0's ``data`` (bytes or ``None``) on every process."""
    if jax.process_count() == 1:
        return data
    size = multihost_utils.broadcast_one_to_all(
        np.int32(-1 if data is None else len(data)))
    if int(size) < 0:
        return None
    buf = (np.frombuffer(data, np.uint8) if is_main()
           else np.zeros(int(size), np.uint8))
    return multihost_utils.broadcast_one_to_all(buf).tobytes()


def broadcast(value: int) -> int:
    """Process 0's integer on every process."""
    if jax.process_count() == 1:
        return int(value)
    return int(multihost_utils.broadcast_one_to_all(np.int32(value)))


def barrier(name: str):
    """Waits until every process gets here (no-op for one process)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
