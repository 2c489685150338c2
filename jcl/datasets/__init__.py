"""Data set loaders: each returns uint8 ``train_x/train_y/test_x/test_y``."""

from jcl.datasets._pickle import safe_load
from jcl.datasets.animal import load_animal_mnist
from jcl.datasets.cifar import load_cifar
from jcl.datasets.fashion import load_fashion_mnist
from jcl.datasets.glyphs import (
    GLYPH_SCRIPTS,
    glyph_characters,
    load_glyph_digits,
    load_glyph_letters,
)
from jcl.datasets.idx import read_idx
from jcl.datasets.mnist import load_mnist
from jcl.datasets.sklearn_digits import load_sklearn_digits

__all__ = [
    "GLYPH_SCRIPTS",
    "glyph_characters",
    "load_animal_mnist",
    "load_cifar",
    "load_fashion_mnist",
    "load_glyph_digits",
    "load_glyph_letters",
    "load_mnist",
    "load_sklearn_digits",
    "read_idx",
    "safe_load",
]
