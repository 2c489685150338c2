"""The method catalogue: every method the command line knows, by name.

One :class:`jcl.methods.entry.MethodEntry` per method: the built-in ones
(each defined beside its factory in ``jcl.methods``), and a user's, added
with :func:`register` from Python, from a module named by ``jcl run
--plugin MODULE``, or from an installed package that declares an entry
point in the group ``jcl.methods`` (the way pytest finds plug-ins)::

    # pyproject.toml of a package with a method
    [project.entry-points."jcl.methods"]
    l2sp = "my_package.l2sp"      # a module that registers, or an entry

A registered method is a citizen like the built-in ones: ``--method
l2sp+bir``, ``--set``, ``--grid``, checkpoints, devices.

>>> parse('gr+si')
['gr', 'si']
>>> sorted(default_hparams(['si'], lr=1e-3, protocol='split-mnist',
...                        scenario='class').items())
[('lr', 0.001), ('si.c', 5000.0), ('si.xi', 0.1)]
"""

import importlib
import importlib.metadata

import numpy as np

from jcl.core.errors import ConfigError
from jcl.methods import (
    asymmetric_replay,
    backbone_methods,
    brain_inspired_replay,
    context_gating,
    dark_experience_replay,
    deep_generative_replay,
    elastic_weight_consolidation,
    episodic_memory,
    experience_replay,
    function_distance,
    functional_regularisation,
    generative_classifier,
    gradient_episodic_memory,
    gradient_sample_selection,
    greedy_dumb_learner,
    hindsight_anchor_learning,
    incremental_classifier,
    learning_without_forgetting,
    objective,
    separate_networks,
    synaptic_intelligence,
)
from jcl.methods.entry import POSITIVE, MethodEntry

GROUP = 'jcl.methods'   # the entry-point group of installed plug-ins
GLOBAL_CHECKS = {'lr': POSITIVE}

_BUILT_IN = [e for module in (
    objective, elastic_weight_consolidation, synaptic_intelligence,
    learning_without_forgetting, context_gating, deep_generative_replay,
    separate_networks, brain_inspired_replay, experience_replay,
    gradient_episodic_memory, incremental_classifier, dark_experience_replay,
    episodic_memory, gradient_sample_selection, hindsight_anchor_learning,
    asymmetric_replay, function_distance, greedy_dumb_learner,
    backbone_methods, generative_classifier, functional_regularisation)
    for e in module.ENTRIES]
_ENTRIES = {e.name: e for e in _BUILT_IN}
_installed_loaded = False


def register(entry: MethodEntry, *, replace: bool = False) -> MethodEntry:
    """Adds ``entry`` to the catalogue (``jcl run --method NAME``).

    Args:
      entry: the method's entry.
      replace: allow replacing an entry of the same name (never a
        built-in one).

    Returns:
      ``entry`` (so a module may write ``ENTRY = register(...)``).
    """
    if not isinstance(entry, MethodEntry):
        raise ConfigError(f'register: expected a jcl.methods.MethodEntry, '
                          f'got {type(entry).__name__}')
    name = entry.name
    if not name or '+' in name or ',' in name or name != name.strip():
        raise ConfigError(f'register: {name!r} is not a method name (no '
                          "'+', ',' or spaces)")
    builtin = any(e.name == name for e in _BUILT_IN)
    if name in _ENTRIES and (builtin or not replace):
        raise ConfigError(f'register: a method {name!r} exists already' +
                          ('' if builtin else ' (pass replace=True)'))
    _ENTRIES[name] = entry
    return entry


def load_plugin(module: str):
    """Imports ``module``, whose import registers methods (``--plugin``)."""
    try:
        importlib.import_module(module)
    except ConfigError:
        raise
    except Exception as e:     # a plug-in's own failure, reported in one line
        raise ConfigError(f'--plugin {module}: cannot import it '
                          f'({type(e).__name__}: {e})') from None


def load_installed():
    """Loads the methods of installed packages (entry points of the group
    ``jcl.methods``) once: each names a module that registers, or a
    :class:`MethodEntry`."""
    global _installed_loaded
    if _installed_loaded:
        return
    _installed_loaded = True
    for point in importlib.metadata.entry_points(group=GROUP):
        try:
            got = point.load()
        except Exception as e:
            raise ConfigError(
                f'the installed method plug-in {point.name!r} ({point.value},'
                f' entry point group {GROUP}) fails to load: '
                f'{type(e).__name__}: {e}') from None
        if isinstance(got, MethodEntry) and _ENTRIES.get(got.name) is not got:
            register(got)


def entries() -> dict:
    """``{name: MethodEntry}`` of every method, installed plug-ins
    included."""
    load_installed()
    return dict(_ENTRIES)


def built_in_names() -> list:
    """The names of jcl's own methods, sorted."""
    return sorted(e.name for e in _BUILT_IN)


def entry(name: str) -> MethodEntry:
    """The entry of ``name``, or a clear error listing the known ones."""
    known = entries()
    if name not in known:
        raise ConfigError(f'unknown method {name!r}; known: '
                          f'{", ".join(sorted(known))} (combine with +; '
                          'add your own with --plugin MODULE)')
    return known[name]


def parse(spec: str) -> list:
    """``'gr+si'`` -> ``['gr', 'si']``, with a clear error for unknowns."""
    parts = [p.strip() for p in spec.split('+')]
    for p in parts:
        entry(p)
    if len(set(parts)) != len(parts):
        raise ConfigError(f'method {spec!r} names a part twice')
    return parts


def default_hparams(parts: list, *, lr: float, protocol='split-mnist',
                    scenario='class', batch=128) -> dict:
    """The hyperparameters of a composition with their defaults."""
    hp = {'lr': lr}
    for p in parts:
        hp.update(entry(p).default_values(protocol, scenario, batch))
    return hp


def check_scenario(parts: list, scenario: str):
    """Raises :class:`ConfigError` if a part is undefined in ``scenario``,
    or if the parts cannot share one model."""
    for p in parts:
        e = entry(p)
        if scenario not in e.scenarios:
            raise ConfigError(
                f'method {p!r} is defined for '
                f'{"/".join(e.scenarios)}-incremental learning only, not '
                f'{scenario}')
    check_models(parts)


def check_models(parts: list):
    """At most one part brings its own network, one a generator, one its
    own current-data objective, and one each ``exclusive`` role; a network
    that takes no generator does not meet one; a part that combines with
    nothing stands alone."""
    nets = [p for p in parts if entry(p).network is not None]
    gens = [p for p in parts if entry(p).generator is not None]
    name = '+'.join(parts)
    alone = [p for p in parts if entry(p).alone]
    if alone and len(parts) > 1:
        raise ConfigError(f'{name}: {alone[0]} composes with no other part '
                          '(its predictions come from a network of its own, '
                          "which the other parts' losses do not train; run "
                          'it alone, or beside others in a comma list)')
    if len(nets) > 1:
        raise ConfigError(f'{name}: the network can be built one way only, '
                          f'not by {" and ".join(nets)}')
    if len(gens) > 1:
        raise ConfigError(f'{name}: at most one part may bring a generator '
                          f'({" and ".join(gens)} do)')
    if nets and gens and not entry(nets[0]).generators:
        raise ConfigError(f'{name}: {nets[0]} and a generator ({gens[0]}) '
                          'do not combine')
    owns = [p for p in parts if entry(p).own_objective]
    if len(owns) > 1:
        raise ConfigError(f'{name}: {" and ".join(owns)} each bring their '
                          'own objective on the current data; at most one '
                          'part may')
    roles = {}
    for p in parts:
        role = entry(p).exclusive
        if role and role in roles:
            raise ConfigError(f'{name}: {roles[role]} and {p} are both a '
                              f'{role}; at most one part may be')
        roles.setdefault(role, p)


def static_hparams(parts: list) -> set:
    """The names of a composition's one-value-per-run hyperparameters."""
    return {n for p in parts for n in entry(p).static}


def check_hparams(parts: list, hp: dict):
    """Raises :class:`ConfigError` for unknown or impossible values."""
    checks = dict(GLOBAL_CHECKS)
    for p in parts:
        checks.update(entry(p).checks)
    known = set(default_hparams(parts, lr=1.0))
    for name, values in hp.items():
        if name not in known:
            raise ConfigError(
                f'unknown hyperparameter {name!r} for method '
                f'{"+".join(parts)}; known: {", ".join(sorted(known))}')
        if name in checks:
            ok, need = checks[name]
            for v in np.atleast_1d(values):
                if not np.isfinite(v) or not ok(v):
                    raise ConfigError(f'{name}={v:g}: {need}')


def schedule(parts: list, spec) -> dict:
    """The composition's own defaults of ``'iters'`` and ``'batch'`` on a
    protocol (:attr:`MethodEntry.schedule`), ``{}`` where it has none."""
    out = {}
    for p in parts:
        got = entry(p).schedule
        if got is not None:
            out.update(got(spec))
    return out


def is_joint(parts: list) -> bool:
    """Whether a composition trains on all data so far (Joint)."""
    return any(entry(p).joint for p in parts)
