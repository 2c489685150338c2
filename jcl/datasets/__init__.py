"""Data set loaders: each returns uint8 ``train_x/train_y/test_x/test_y``."""

from jcl.datasets._pickle import safe_load
from jcl.datasets.cifar import load_cifar
from jcl.datasets.fashion import load_fashion_mnist
from jcl.datasets.idx import read_idx
from jcl.datasets.mnist import load_mnist

__all__ = [
    "load_cifar",
    "load_fashion_mnist",
    "load_mnist",
    "read_idx",
    "safe_load",
]
