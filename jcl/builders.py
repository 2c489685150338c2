"""How each method of the command line builds its members from the run's
context (:class:`jcl.specs.BuildCtx`) and hyperparameters, and its
defaults: the entries of :data:`jcl.registry.METHODS`.

Method modules are imported inside the builders, so reading the table
imports no method.
"""

from jcl import defaults
from jcl.specs import Members, ModelNeeds


def static(ctx, name, default):
    """A one-value-per-run hyperparameter (the largest over the rows)."""
    return int(ctx.static_max.get(name, default))


def ewc(prefix, online):
    def build(ctx, hp):
        from jcl.methods.ewc import ewc
        n = static(ctx, f'{prefix}.fisher_samples',
                    defaults.fisher_samples(ctx.protocol, None))
        extra = {'gamma': hp[f'{prefix}.gamma']} if online else {}
        return Members(other=[(prefix, ewc(
            ctx.model, strength=hp[f'{prefix}.lambda'], online=online,
            fisher_samples=n or None, **extra))])
    return build


def si(ctx, hp):
    from jcl.methods.si import si
    return Members(other=[('si', si(ctx.model, c=hp['si.c'],
                                    xi=hp['si.xi']))])


def lwf(ctx, hp):
    from jcl.methods.lwf import lwf
    return Members(replay=[('lwf', lwf(
        ctx.model, temperature=hp['lwf.temperature'],
        class_mean=hp['lwf.class_mean']))])


def gr(name, distill):
    def build(ctx, hp):
        from jcl.methods.generative import generator_loss
        from jcl.methods.replay import generative_replay
        size = static(ctx, 'gr.replay_size', ctx.batch)
        return Members(
            current=[('generator', generator_loss(ctx.model))],
            replay=[(name, generative_replay(
                ctx.model, num_classes=ctx.data.num_outputs,
                distill=distill, temperature=hp.get('gr.temperature', 2.0),
                replay_size=size, replay_count=hp['gr.replay_size'],
                num_tasks=ctx.num_tasks))])
    return build


def bir_needs(static):
    """BI-R's model from its static switches (see ``_bir``)."""
    return ModelNeeds(
        generator='rtf' if static.get('bir.rtf', 1) else 'separate',
        conditional=bool(static.get('bir.conditional', 1)),
        gates='task' if static.get('bir.task_gates', 0) else 'class',
        gate_prop='bir.dg_prop')


def bir(ctx, hp):
    """Brain-inspired replay; each component a switch: ``bir.rtf`` (one
    model), ``bir.conditional`` (mixture prior), ``bir.dg_prop`` (gates;
    0: none), ``bir.distill`` (soft targets); ``bir.task_gates``, the
    gates' groups."""
    from jcl.methods.generative import generator_loss
    from jcl.methods.replay import generative_replay
    needs = bir_needs(ctx.static_max)
    groups = (ctx.num_tasks if needs.gates == 'task'
              else ctx.data.num_outputs)
    size = static(ctx, 'bir.replay_size', ctx.batch)
    return Members(
        current=[('generator', generator_loss(
            ctx.model, conditional=needs.conditional, gate=needs.gates,
            num_groups=groups))],
        replay=[('bir', generative_replay(
            ctx.model, num_classes=ctx.data.num_outputs,
            distill=hp['bir.distill'], temperature=hp['bir.temperature'],
            t2=hp['bir.t2'], conditional=needs.conditional,
            gate=needs.gates, num_groups=groups, replay_size=size,
            replay_count=hp['bir.replay_size'], num_tasks=ctx.num_tasks))])


def rtf(ctx, hp):
    from jcl.methods.generative import generator_loss
    from jcl.methods.replay import generative_replay
    return Members(
        current=[('generator', generator_loss(ctx.model))],
        replay=[('rtf', generative_replay(
            ctx.model, num_classes=ctx.data.num_outputs, distill=True,
            temperature=hp['rtf.temperature'], t2=hp['rtf.t2'],
            replay_size=static(ctx, 'rtf.replay_size', ctx.batch),
            num_tasks=ctx.num_tasks))])


def er(ctx, hp):
    from jcl.methods.er import er
    return Members(replay=[('er', er(
        ctx.model, per_class=static(ctx, 'er.per_class', 100),
        replay_size=static(ctx, 'er.replay_size', ctx.batch),
        **ctx.buffer_layout()))])


def agem(ctx, hp):
    from jcl.methods.agem import agem
    return Members(other=[('agem', agem(
        ctx.model, per_class=static(ctx, 'agem.per_class', 100),
        replay_size=static(ctx, 'agem.replay_size', ctx.batch),
        **ctx.buffer_layout()))])


def icarl(ctx, hp):
    from jcl.methods.icarl import icarl
    return Members(current=[('icarl', icarl(
        ctx.model, per_class=static(ctx, 'icarl.per_class', 100),
        temperature=hp['icarl.temperature'],
        selection='herding' if static(ctx, 'icarl.herding', 1)
        else 'random',
        num_outputs=ctx.data.num_outputs,
        task_sizes=[int(c) for c in ctx.data.train.count],
        full_capacity=bool(static(ctx, 'icarl.full_capacity', 0)),
        batch_size=ctx.batch, **ctx.buffer_layout()))])


def derpp(ctx, hp):
    from jcl.methods.derpp import derpp
    layout = ctx.buffer_layout()
    return Members(other=[('derpp', derpp(
        ctx.model, prepare=layout['prepare'],
        input_shape=layout['input_shape'], dtype=layout['dtype'],
        num_outputs=ctx.data.num_outputs,
        size=static(ctx, 'derpp.budget', 200),
        minibatch=static(ctx, 'derpp.minibatch', ctx.batch),
        alpha=hp['derpp.alpha'], beta=hp['derpp.beta']))])


def buffer_defaults(name, extra=None):
    def get(p, s, b):
        return {f'{name}.per_class': defaults.buffer_per_class(p, s),
                f'{name}.replay_size': float(b), **(extra or {})}
    return get


def ewc_defaults(prefix, online):
    def get(p, s, b):
        out = {f'{prefix}.lambda': defaults.ewc_lambda(p, s),
               f'{prefix}.fisher_samples': defaults.fisher_samples(p, s)}
        if online:
            out[f'{prefix}.gamma'] = 1.0
        return out
    return get


def eft(ctx, hp):
    """EFT: CLR's penalty (``eft.l2``), and the shared convolutions
    trained on the first task only when ``eft.train_base`` is 1 (the EFT
    code), never when 0 (a frozen pre-trained backbone)."""
    from jcl.methods.norm_penalty import first_task_only
    from jcl.methods.norm_penalty import norm_penalty as penalty
    return Members(other=[
        ('eft', penalty(ctx.model.labels, ctx.model.banked,
                        strength=hp['eft.l2'])),
        ('eft_base', first_task_only('params', hp['eft.train_base']))])


def norm_penalty(name):
    """CLR's un-squared L2 penalty (``NAME.l2``) on the model's trainable
    tensors, the current task's banks only."""
    def build(ctx, hp):
        from jcl.methods.norm_penalty import norm_penalty as penalty
        return Members(other=[(name, penalty(
            ctx.model.labels, ctx.model.banked, strength=hp[f'{name}.l2']))])
    return build
