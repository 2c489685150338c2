"""The generative classifier (van de Ven, Li & Tolias 2021), as the NMI
2022 code runs it (Class-IL).

* **Model**: one VAE per class (:func:`jcl.models.class_vaes.class_vaes`);
  on split MNIST each is ``784-85-85-5`` (the code's ``--fc-units-gc 85
  --fc-lay-gc 3 --z-dim-gc 5``), sigmoid outputs, PyTorch's
  initialisation.
* **Training**: the VAE of class ``c`` on the examples of class ``c``
  only: negative ELBO (binary cross-entropy and KL, each per input
  dimension, one posterior sample), Adam 1e-3, a fresh optimiser for
  each VAE. The code trains the classes one after another,
  ``iters / classes_per_task`` steps of ``batch`` examples of the class
  each (``compare.py``); jcl trains a task's VAEs side by side for
  ``iters / classes_per_task`` steps, each VAE on the first
  ``class_batch`` (the code's batch) examples of its class in a batch
  drawn from the task, ``3/2 classes_per_task class_batch`` large (the
  entry's ``schedule``: 384 on split MNIST, where a class falls short of
  128 of them in about one step in ten million; a short class trains on
  what it has). The VAEs share no parameters, so one Adam over all with
  its state reset at every task is one Adam per VAE.
* **Prediction**: the class of highest importance-sampled likelihood,
  ``samples`` importance samples each (the code's ``--eval-s 50``), a
  prediction override.

There is nothing to combine it with: it has no discriminative network
for another method to regularise or replay into, so ``+`` is refused.

>>> import jax, jax.numpy as jnp
>>> from jcl.core.records import Batch, Forward, TaskCtx
>>> from jcl.models.class_vaes import class_vaes
>>> model = class_vaes((8,), num_classes=4, latent=2, input_dim=6)
>>> params, _ = model.init(jax.random.PRNGKey(0))
>>> m = gen_classifier(model, classes_per_task=2)
>>> ctx = TaskCtx(jnp.int32(1), jax.random.PRNGKey(1), None)
>>> x = jnp.full((3, 6), 0.5)
>>> batch = Batch(x, jnp.array([2, 3, 3]), jnp.ones(3, jnp.int32))
>>> terms, _ = m.loss((), Forward(params, {}, batch, {}, {}), ctx)
>>> sorted(terms)
['loss']
"""

import jax
import jax.numpy as jnp

from jcl.core.errors import ConfigError
from jcl.core.method import Method, make_method, member_key
from jcl.core.model import Model, view
from jcl.methods.entry import Check, MethodEntry, default_of
from jcl.methods.networks import input_dim, no_backbone
from jcl.models.class_vaes import class_vaes
from jcl.tasks.catalog import PROTOCOLS, protocol_spec

SAMPLES = Check(lambda v: v >= 1 and float(v).is_integer(),
                'must be a whole number of importance samples >= 1')
BATCH = Check(lambda v: v >= 1 and float(v).is_integer(),
              'must be a whole number of examples >= 1')


def gen_classifier(model: Model, *, classes_per_task: int,
                   class_batch: int = 128, samples: int = 50) -> Method:
    """The generative classifier's method on a model of class VAEs.

    Args:
      model: one VAE per class (:func:`jcl.models.class_vaes.class_vaes`:
        views ``'class_losses'`` and ``'log_likelihood'``).
      classes_per_task: the task's classes are the output units
        ``task_id * classes_per_task + r``, ``r < classes_per_task``
        (Class-IL).
      class_batch: examples of its class each VAE trains on per step (the
        first ones of the batch; static).
      samples: importance samples per class at prediction (static).

    Returns:
      A method with one term, ``'loss'``: the sum over the task's classes
      of the mean negative ELBO of their examples under their VAEs;
      state: the PRNG key of the importance samples (renewed at every
      task's end).
    """
    losses = view(model, 'class_losses', 'gen-classifier')
    likelihood = view(model, 'log_likelihood', 'gen-classifier')

    def init(snap, ctx):
        del snap  # unused
        return member_key(ctx, 'gen-classifier')

    def loss(key, fwd, ctx):
        del key  # the step's key draws the posterior samples
        rows = ctx.task_id * classes_per_task + jnp.arange(classes_per_task)
        picks, mine = first_of_each(fwd.batch.y, rows, class_batch)
        per = losses(fwd.params, fwd.batch.x[picks],
                     member_key(ctx, 'gen-classifier'), rows)  # [R, K]
        count = jnp.maximum(mine.sum(1), 1.0)
        return {'loss': jnp.sum(jnp.sum(per * mine, 1) / count)}

    def consolidate(key, end, ctx):
        del key, end  # unused
        return member_key(ctx, 'gen-classifier')

    def predict(key, snap, x, task):
        del task  # unused: every class's VAE scores every input
        return likelihood(snap.params, x, key, samples)

    return make_method(init=init, loss=loss, consolidate=consolidate,
                       predict=predict)


def first_of_each(y, rows, k: int):
    """The positions of the first ``k`` examples of each class of
    ``rows`` in a batch with targets ``y``, and which are real.

    >>> p, ok = first_of_each(jnp.array([3, 2, 3, 3]), jnp.array([2, 3]), 2)
    >>> p.tolist(), ok.tolist()
    ([[1, 0], [0, 2]], [[True, False], [True, True]])
    """
    order = -jnp.arange(y.shape[0], dtype=jnp.float32)   # earliest first

    def one(row):
        _, j = jax.lax.top_k(jnp.where(y == row, order, -jnp.inf),
                             min(k, y.shape[0]))
        if k > y.shape[0]:
            j = jnp.pad(j, (0, k - y.shape[0]))
        return j, y[j] == row

    return jax.vmap(one)(rows)


def shape_of(spec) -> tuple:
    """``(hidden, latent)`` of each class's VAE on a protocol: the NMI
    code's ``85`` units in 2 hidden layers and ``z = 5`` on split MNIST,
    one hidden layer and ``z = 20`` elsewhere (``params/param_values.py``:
    ``fc_lay_gc``, ``z_dim_gc``)."""
    if spec.kind == 'split' and spec.dataset in ('mnist', 'fashion-mnist'):
        return (85, 85), 5
    return (85,), 20


def _network(ctx, hp):
    del hp  # unused
    no_backbone(ctx, 'the generative classifier')
    if ctx.protocol.inputs != 'pixels':
        raise ConfigError('gen-classifier: its VAEs model pixels in [0, 1], '
                          'not features')
    hidden, latent = shape_of(ctx.settings)
    return class_vaes(hidden, num_classes=ctx.num_outputs, latent=latent,
                      input_dim=input_dim(ctx))


def _schedule(spec):
    """The code's ``compare.py``: ``iters / classes_per_task`` steps per
    class, learning rate 1e-3; a batch that holds the protocol's batch of
    each class (:func:`gen_classifier`)."""
    per = max(spec.num_classes // spec.num_tasks, 1)
    return {'iters': max(spec.iters // per, 1),
            'batch': (3 * per * spec.batch + 1) // 2, 'lr': 1e-3}


ENTRIES = [MethodEntry(
    'gen-classifier',
    lambda ctx, hp, model: gen_classifier(
        model, classes_per_task=ctx.protocol.classes_per_task,
        class_batch=ctx.size('gen-classifier.class_batch'),
        samples=ctx.size('gen-classifier.samples')),
    defaults=lambda p, s, b: {
        'gen-classifier.samples': float(default_of(gen_classifier,
                                                   'samples')),
        'gen-classifier.class_batch': float(
            protocol_spec(p).batch if p in PROTOCOLS else
            default_of(gen_classifier, 'class_batch'))},
    checks={'gen-classifier.samples': SAMPLES,
            'gen-classifier.class_batch': BATCH},
    static=('gen-classifier.samples', 'gen-classifier.class_batch'),
    network=_network, generators=False,
    scenarios=('class',), reset_optimizer=True, own_objective=True,
    alone=True, schedule=_schedule,
    summary='generative classifier: a VAE per class, importance-sampled '
            'likelihoods (van de Ven et al. 2021)')]
