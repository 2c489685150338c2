"""Memory aware synapses (Aljundi et al. 2018), written outside jcl.

After each task every parameter's importance is the mean absolute
gradient of the squared L2 norm of the model's active outputs;
``strength * sum Omega (theta - theta*)**2`` keeps later tasks near it.
Importing this module registers ``mas`` with the command line:
``jcl run --plugin mas --method mas+bir ...``.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp

import jcl


class MASState(NamedTuple):
    anchor: dict   # theta*, the parameters after the last task
    omega: dict    # the accumulated importance


def mas(model, *, strength, chunk=256):
    target = jcl.trainable_part(model)

    def init(snap, ctx):
        theta = target(snap.params)
        return MASState(theta, jax.tree.map(jnp.zeros_like, theta))

    def loss(state, fwd, ctx):
        dist = jcl.core.tree.weighted_sq_dist(state.omega, target(fwd.params),
                                              state.anchor)
        return {'penalty': strength * dist}

    def consolidate(state, end, ctx):
        snap = jcl.Snapshot(end.params, end.model_state)

        def fold(acc, batch, weight):
            g = jcl.weighted_powers(
                model, snap, batch.x, batch.task,
                lambda z, mask: jnp.sum(jnp.where(mask, z, 0.0) ** 2, -1,
                                        keepdims=True),
                ctx.mask(batch.task), example_weight=weight, power=1,
                select=target)
            return jax.tree.map(jnp.add, acc, g)

        zeros = jax.tree.map(jnp.zeros_like, state.omega)
        total, n = jcl.over_task(end, ctx, fold, zeros, chunk=chunk)
        omega = jax.tree.map(lambda o, g: o + g / n, state.omega, total)
        return MASState(target(end.params), omega)

    return jcl.make_method(init=init, loss=loss, consolidate=consolidate)


ENTRY = jcl.register_method(jcl.MethodEntry(
    'mas', lambda ctx, hp, model: mas(model, strength=hp['mas.lambda']),
    defaults={'mas.lambda': 1.0}, checks={'mas.lambda': jcl.methods.NONNEG},
    summary='memory aware synapses (Aljundi et al. 2018), a plug-in'))
