"""Import a script of experiments/ as a module (they are not a package)."""

import importlib.util
import pathlib

EXPERIMENTS = pathlib.Path(__file__).parents[2] / 'experiments'


def load(name: str):
    """The module of ``experiments/NAME.py``, freshly executed."""
    spec = importlib.util.spec_from_file_location(
        name, EXPERIMENTS / f'{name}.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
