"""Sphinx configuration of jcl's documentation.

Build (warnings are errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import importlib
import os
import sys
import types

# jcl from this checkout, before any installed copy
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jcl  # noqa: E402

_PACKAGE = os.path.dirname(os.path.abspath(jcl.__file__))

project = 'jcl'
author = 'the jcl authors'
copyright = 'the jcl authors'
version = release = jcl.__version__

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'sphinx.ext.viewcode',
]

exclude_patterns = ['_build']
templates_path = []
html_theme = 'alabaster'
html_static_path = []
html_title = f'jcl {release}'
html_theme_options = {
    'description': 'continual learning in JAX',
    'fixed_sidebar': True,
}

# docstrings are Google style
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# an ``Attributes:`` section becomes a field list, not attribute
# directives (which would duplicate the fields that autodoc documents
# on dataclasses and Flax modules)
napoleon_use_ivar = True

autodoc_default_options = {
    'members': True,
    'undoc-members': False,
    'show-inheritance': False,
}
autodoc_member_order = 'bysource'
autodoc_typehints = 'signature'


def _skip_tuple_fields(app, what, name, obj, skip, options):
    """Leave out the generated "Alias for field number N" docstrings of
    NamedTuple fields (the class docstring describes its fields)."""
    doc = getattr(obj, '__doc__', None) or ''
    if what == 'class' and doc.startswith('Alias for field number'):
        return True
    return None


def _canonical(target):
    """The defining module's name of a re-exported object: ``jcl.Method``
    -> ``jcl.core.method.Method``; None when it cannot be found."""
    parts = target.split('.')
    obj = jcl
    for i, name in enumerate(parts[1:], 1):
        if hasattr(obj, name):
            obj = getattr(obj, name)
            continue
        if not isinstance(obj, types.ModuleType):
            return None
        try:   # a submodule its package does not import
            obj = importlib.import_module('.'.join(parts[:i + 1]))
        except ImportError:
            return None
        if not os.path.abspath(obj.__file__ or '').startswith(_PACKAGE):
            return None   # not this checkout's (a stale installed copy)
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    module = getattr(obj, '__module__', None)
    qualname = getattr(obj, '__qualname__', None)
    if not module or not qualname:
        return None
    return f'{module}.{qualname}'


def _resolve_reexport(app, env, node, contnode):
    """Resolve a reference to a re-exported name (``jcl.run_sweep``,
    ``jcl.methods.bir``) to where the object is documented."""
    if node.get('refdomain') != 'py':
        return None
    target = node.get('reftarget', '')
    if not target.startswith('jcl.'):
        return None
    canonical = _canonical(target)
    if canonical is None or canonical == target:
        return None
    is_module = canonical in sys.modules
    return env.get_domain('py').resolve_xref(
        env, node['refdoc'], app.builder, 'mod' if is_module else 'obj',
        canonical, node, contnode)


def setup(app):
    app.connect('autodoc-skip-member', _skip_tuple_fields)
    app.connect('missing-reference', _resolve_reexport)
