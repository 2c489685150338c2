"""Averaged gradient episodic memory (A-GEM; Chaudhry et al. 2019).

The buffer and its replay batches are ER's
(:mod:`jcl.methods.experience_replay`). A-GEM
does not add the replay loss: its gradient stage takes the gradient
``g_ref`` of the replayed examples' cross-entropy and, where the current
gradient ``g`` conflicts with it (``g . g_ref < 0``), projects ``g`` onto
the half-space where it does not: ``g - (g . g_ref / (g_ref . g_ref +
eps)) g_ref`` (over all trainable parameters at once). The current loss
is not down-weighted (no replay members).

>>> import jax.numpy as jnp
>>> g, r = {'w': jnp.array([1., -2.])}, {'w': jnp.array([0., 1.])}
>>> [abs(round(v, 5)) for v in project(g, r)['w'].tolist()]  # conflict
[1.0, 0.0]
>>> project(g, {'w': jnp.array([1., 0.])})['w'].tolist()   # no conflict
[1.0, -2.0]
"""

import jax
import jax.numpy as jnp

from jcl.core import tree
from jcl.core.method import Method, make_method, member_key
from jcl.core.model import Model
from jcl.methods import buffers
from jcl.methods.experience_replay import buffer_entry, class_buffer, replay_ce


def _vdot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a),
                                              jax.tree.leaves(b)))


def project(grads, ref, eps=1e-7):
    """A-GEM's projection of ``grads`` given the reference ``ref``."""
    dot = _vdot(grads, ref)
    coef = jnp.where(dot < 0, dot / (_vdot(ref, ref) + eps), 0.0)
    return jax.tree.map(lambda g, r: g - coef * r, grads, ref)


def agem(model: Model, *, prepare, input_shape, num_tasks: int,
         classes_per_task: int, per_class: int, replay_size: int = 128,
         eps: float = 1e-7, dtype=jnp.uint8) -> Method:
    """A-GEM with ER's class-balanced buffer (arguments as
    :func:`jcl.methods.er`; ``eps`` the projection's damping, the NMI
    code's 1e-7).

    Returns:
      A method with state :class:`jcl.methods.buffers.Buffer`, no loss terms and
      a gradient stage.
    """
    def init(snap, ctx):
        del snap, ctx  # unused
        return class_buffer(input_shape=input_shape, num_tasks=num_tasks,
                            classes_per_task=classes_per_task,
                            per_class=per_class, dtype=dtype)

    def grads(buf, step, ctx):
        if ctx.first_task:   # nothing stored yet: no reference gradient
            return step.grads
        trainable, frozen = tree.split_like(step.params, step.grads)

        def ref_loss(part):
            return replay_ce(model, tree.merge(part, frozen),
                             step.model_state, buf, ctx,
                             member_key(ctx, 'agem'), replay_size, prepare)

        return project(step.grads, jax.grad(ref_loss)(trainable), eps)

    def consolidate(buf, end, ctx):
        return buffers.store_task(buf, end.data, ctx.task_id,
                                  member_key(ctx, 'er-store'),
                                  classes_per_task=classes_per_task,
                                  per_class=per_class)

    return make_method(init=init, grads=grads, consolidate=consolidate)


ENTRIES = [buffer_entry('agem', agem, 'averaged gradient episodic memory '
                        '(Chaudhry et al. 2019)')._replace(
                            exclusive='gradient projection')]
