"""Experience replay (ER) from a class-balanced buffer of raw examples.

At the end of each task a random ``per_class`` examples of each of its
classes are stored (:func:`jcl.methods.buffers.store_task`; the NMI code's
selection and budget). Every step replays a minibatch drawn from the
stored examples of the earlier tasks, split evenly over them, with their
stored labels; each example is scored over its own task's active outputs
(Task-IL: its head). The term is on replayed data, weighted ``1 - 1/t``
(:func:`jcl.core.combine.replayed`).

>>> import jax, jax.numpy as jnp
>>> from jcl.models import mlp_classifier
>>> from jcl.tasks.protocols import pixels
>>> from jcl.core.records import Snapshot, TaskCtx
>>> clf = mlp_classifier((8,), num_outputs=4, input_dim=6)
>>> m = er(clf, prepare=pixels, input_shape=(6,), num_tasks=2,
...        classes_per_task=2, per_class=3)
>>> buf = m.init(Snapshot(*clf.init(jax.random.PRNGKey(0))), None)
>>> buf.x.shape, buf.x.dtype        # 2 tasks x 2 classes x 3 per class
((12, 6), dtype('uint8'))
"""

import jax.numpy as jnp

from jcl.core import losses
from jcl.core.combine import replayed
from jcl.core.method import Method, make_method, member_key
from jcl.core.model import Model
from jcl.methods import buffers
from jcl.methods.buffers import Buffer
from jcl.methods.entry import BUDGET, REPLAY_SIZE, MethodEntry


def replay_ce(model: Model, params, model_state, buf: Buffer, ctx, key,
              n: int, prepare):
    """The weighted cross-entropy of ``n`` stored examples of the tasks
    before ``ctx.task_id`` (drawn evenly over those tasks), each over its
    task's active outputs; 0 when nothing is stored."""
    slots, w = buffers.draw_by_task(buf, key, n, ctx.task_id)
    raw = buffers.examples(buf, slots)
    out, _ = model.apply(params, model_state, prepare(raw.x), raw.task,
                         train=True)
    ce = losses.cross_entropy(out['logits'], raw.y, ctx.mask(raw.task))
    w = jnp.where(raw.task < ctx.task_id, w, 0.0)
    return jnp.sum(w * ce)


def joined_ce(model: Model, prepare, buf: Buffer, fwd, ctx, key, n: int):
    """The mean cross-entropy over the current batch joined with ``n``
    stored examples drawn without replacement (fewer while fewer are
    stored): the DER paper's code's ER loss (mammoth ``models/er.py``),
    each example over its task's active outputs."""
    slots, w = buffers.draw(buf, key, min(n, buf.y.shape[0]))
    raw = buffers.examples(buf, slots)
    out, _ = model.apply(fwd.params, fwd.model_state, prepare(raw.x),
                         raw.task, train=True)
    stored = losses.cross_entropy(out['logits'], raw.y, ctx.mask(raw.task))
    b = fwd.batch
    current = losses.cross_entropy(fwd.outputs['logits'], b.y,
                                   ctx.mask(b.task))
    return (jnp.sum(current) + jnp.sum(w * stored)) / (
        current.shape[0] + jnp.sum(w))


def class_buffer(*, input_shape, num_tasks, classes_per_task, per_class,
                 dtype=jnp.uint8) -> Buffer:
    """An empty class-balanced buffer: ``per_class`` slots per class."""
    return buffers.empty(num_tasks * classes_per_task * per_class,
                         tuple(input_shape), dtype)


def er(model: Model, *, prepare, input_shape, num_tasks: int,
       classes_per_task: int, per_class: int, replay_size: int = 128,
       dtype=jnp.uint8) -> Method:
    """Experience replay.

    Args:
      model: the model trained.
      prepare: the protocol's ``raw -> model input`` (examples are stored
        raw).
      input_shape: shape of one raw example. num_tasks: tasks to reserve
        slots for. classes_per_task: classes of each task.
      per_class: examples stored per class (the NMI code: 100 on split
        MNIST and CIFAR-100, 10 on permuted MNIST).
      replay_size: replayed examples per step (static).
      dtype: the stored inputs' dtype.

    Returns:
      A method that replays, with state :class:`jcl.methods.buffers.Buffer`
      and one term, ``'replay'`` (weighted ``1 - 1/t``; 0 on the first
      task).
    """
    def init(snap, ctx):
        del snap, ctx  # unused
        return class_buffer(input_shape=input_shape, num_tasks=num_tasks,
                            classes_per_task=classes_per_task,
                            per_class=per_class, dtype=dtype)

    def loss(buf, fwd, ctx):
        return {'replay': replay_ce(model, fwd.params, fwd.model_state, buf,
                                    ctx, member_key(ctx, 'er'), replay_size,
                                    prepare)}

    def consolidate(buf, end, ctx):
        return buffers.store_task(buf, end.data, ctx.task_id,
                                  member_key(ctx, 'er-store'),
                                  classes_per_task=classes_per_task,
                                  per_class=per_class)

    return replayed(make_method(init=init, loss=loss,
                                consolidate=consolidate))


def buffer_per_class(protocol, scenario):
    """Examples stored per class by the buffer methods (the NMI code's
    ``--budget``): 100, and 10 on permuted MNIST (60,000 examples per
    task, 10 classes each)."""
    del scenario  # unused
    return 10.0 if protocol == 'permuted-mnist' else 100.0


def buffer_entry(name, factory, summary):
    """The entry of a class-balanced buffer method (ER, A-GEM):
    ``NAME.per_class`` and ``NAME.replay_size``, both shapes."""
    def build(ctx, hp, model):
        return factory(model, per_class=ctx.size(f'{name}.per_class'),
                       replay_size=ctx.size(f'{name}.replay_size'),
                       **ctx.buffer_layout())

    return MethodEntry(
        name, build,
        defaults=lambda p, s, b: {f'{name}.per_class': buffer_per_class(p, s),
                                  f'{name}.replay_size': float(b)},
        checks={f'{name}.per_class': BUDGET,
                f'{name}.replay_size': REPLAY_SIZE},
        static=(f'{name}.per_class', f'{name}.replay_size'),
        summary=summary)


ENTRIES = [buffer_entry('er', er, 'experience replay from a class-balanced '
                        'buffer')]


