"""Shared fixtures: small synthetic protocols (fast, no data files)."""

import os
import tempfile

# One persistent XLA compilation cache for the whole test session (and the
# CLI subprocesses it starts, which inherit the environment): identical
# programs compile once. Set before jax is imported.
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR',
                      tempfile.mkdtemp(prefix='jcl-test-xla-'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from jcl.tasks import protocols  # noqa: E402


def synthetic_arrays(n_train=600, n_test=200, classes=10, seed=0):
    """Linearly separable-ish uint8 'images': class c lights block c."""
    rng = np.random.RandomState(seed)

    def make(n):
        y = rng.randint(0, classes, n)
        x = rng.randint(0, 40, (n, 28, 28)).astype(np.uint8)
        for c in range(classes):
            rows = slice(2 * c + 4, 2 * c + 6)
            x[y == c, rows, 4:24] = 250
        return x, y.astype(np.uint8)

    tx, ty = make(n_train)
    vx, vy = make(n_test)
    return dict(train_x=tx, train_y=ty, test_x=vx, test_y=vy)


@pytest.fixture(scope='session')
def arrays():
    return synthetic_arrays()


@pytest.fixture(params=['task', 'domain', 'class'])
def scenario(request):
    return request.param


@pytest.fixture
def split_protocol(arrays, scenario):
    return protocols.class_split('synthetic', arrays, scenario)
