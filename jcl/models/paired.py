"""A classifier and a separate generator, trained together as one model.

Generative replay (Shin et al. 2017) keeps a generator beside the
classifier. :func:`paired` makes the two one :class:`jcl.core.model.Model`:
parameters ``{'classifier': ..., 'generator': ...}``, one forward pass
that returns the classifier's outputs and the generator's posterior, the
classifier's taps and the generator's views. Its ``main`` is the
classifier: regularisers (EWC, SI) leave the generator alone, as in the
references, where the generator is a model of its own.

>>> import jax
>>> from jcl.models import mlp_classifier
>>> from jcl.models.vae import vae_model
>>> m = paired(mlp_classifier((8,), num_outputs=2, input_dim=5),
...            vae_model((8,), latent=3, input_dim=5))
>>> params, state = m.init(jax.random.PRNGKey(0))
>>> sorted(params)
['classifier', 'generator']
>>> sorted(m.views)
['decode', 'draw', 'prior', 'reconstruction', 'sample', 'taps', 'to_input']
"""

import jax

from jcl.core.model import DenseTaps, Model, make_model


def paired(classifier: Model, generator: Model) -> Model:
    """The classifier and the generator as one model (see module doc).

    The classifier's parameters are drawn from the key itself, the
    generator's from ``fold_in(key, 2)``.
    """
    def init(key):
        cp, cs = classifier.init(key)
        gp, gs = generator.init(jax.random.fold_in(key, 2))
        return ({'classifier': cp, 'generator': gp},
                {'classifier': cs, 'generator': gs})

    def apply(params, state, x, task, *, train=False):
        out, cs = classifier.apply(params['classifier'], state['classifier'],
                                   x, task, train=train)
        gen, gs = generator.apply(params['generator'], state['generator'],
                                  x, task, train=train)
        out = {**out, 'mu': gen['mu'], 'logvar': gen['logvar']}
        return out, {'classifier': cs, 'generator': gs}

    def labels(params):
        return {'classifier': classifier.labels(params['classifier']),
                'generator': generator.labels(params['generator'])}

    views = {}
    if 'taps' in classifier.views:
        taps = classifier.views['taps']
        views['taps'] = DenseTaps(
            lambda p: taps.layers(p['classifier']),
            lambda p, s, x, task, pert: taps.apply(
                p['classifier'], s['classifier'], x, task, pert))
    for name, fn in generator.views.items():
        views[name] = _on_generator(name, fn)
    return make_model(init=init, apply=apply, labels=labels,
                      main=lambda p: p['classifier'], views=views,
                      name=f'{classifier.name} + {generator.name}')


ON_OUTPUTS = ('reconstruction', 'to_input')   # views of outputs only
ON_PARAMS = ('prior', 'draw')                   # views of parameters only


def _on_generator(name, fn):
    """A generator view that takes the paired model's params and state."""
    if name in ON_OUTPUTS:
        return fn
    if name in ON_PARAMS:
        return lambda params, *args: fn(params['generator'], *args)

    def view(params, state, *args):
        return fn(params['generator'], state['generator'], *args)

    return view
