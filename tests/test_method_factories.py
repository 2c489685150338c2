"""Every command-line method is a public factory in jcl.methods, and the
command line builds it through that factory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jcl
from jcl.methods import catalog
from jcl.methods.entry import default_of
from jcl.tasks import catalog as protocols_catalog
from jcl.tasks import protocols

BUILT_IN = catalog.built_in_names()


def test_every_name_is_a_factory_returning_a_method():
    assert len(BUILT_IN) == 32
    for name in BUILT_IN:
        factory = getattr(jcl.methods, name.replace('-', '_'))
        assert callable(factory) and factory.__doc__, name
        assert name.replace('-', '_') in jcl.methods.__all__


@pytest.mark.parametrize('name', [n for n in BUILT_IN if n not in (
    'clr', 'clr-full', 'sgd', 'sgd-ll', 'psp', 'supsup', 'eft')])
def test_the_catalogue_builds_each_method_with_its_factory(arrays, name):
    """Building by name gives a method whose state and loss terms are
    those of the factory called by hand (the same tree, the same values)."""
    e = catalog.entry(name)
    scenario = e.scenarios[-1]
    proto = protocols.class_split('split-mnist', arrays, scenario)
    spec = protocols_catalog.protocol_spec('split-mnist')
    learner = jcl.build_learner(proto, spec, [name], hidden=(8,), iters=2,
                                batch=4)
    hp = catalog.default_hparams([name], lr=1e-3, protocol='split-mnist',
                                 scenario=scenario, batch=4)
    model = learner.make_model(hp)
    built = learner.make_method(hp, model)
    snap = jcl.Snapshot(*model.init(jax.random.PRNGKey(0)))
    ctx = jcl.TaskCtx(jnp.int32(0), jax.random.PRNGKey(1),
                      jnp.asarray(proto.active))
    state = built.init(snap, ctx)
    assert ('ce' in state) != e.own_objective
    own = state[name]
    by_hand = e.build(learner_ctx(proto, spec, name), hp, model)
    assert jax.tree.structure(own) == jax.tree.structure(
        by_hand.init(snap, ctx))
    assert built.replays == by_hand.replays


def learner_ctx(proto, spec, name):
    hp = catalog.default_hparams([name], lr=1.0, protocol='split-mnist',
                                 scenario=proto.scenario, batch=4)
    return jcl.methods.BuildCtx(proto, spec, 4, (8,), None, hp)


def test_defaults_are_the_factories_own():
    """A default the factory has is read from it, never written twice."""
    hp = catalog.default_hparams(['si', 'lwf', 'bir', 'online-ewc', 'eft'],
                                 lr=1e-3)
    assert hp['si.xi'] == default_of(jcl.methods.si, 'xi') == 0.1
    assert hp['lwf.temperature'] == default_of(jcl.methods.lwf,
                                               'temperature')
    assert hp['bir.t2'] == default_of(jcl.methods.bir, 't2') == 0.0
    assert hp['online-ewc.gamma'] == default_of(jcl.methods.online_ewc,
                                                'gamma')
    assert hp['eft.l2'] == default_of(jcl.methods.eft, 'l2') == 1e-5


def test_replay_methods_weigh_their_terms_and_the_objective():
    """On task t (0-based task_id t - 1) a replay method's terms are
    weighted 1 - 1/t and the cross-entropy 1/t; a penalty is not."""
    clf = jcl.models.mlp_classifier((4,), num_outputs=2, input_dim=3)
    lwf = jcl.methods.lwf(clf)
    plain = jcl.methods.teacher_distillation(clf)
    params, state = clf.init(jax.random.PRNGKey(0))
    teacher = jcl.Snapshot(*clf.init(jax.random.PRNGKey(1)))
    x = jnp.linspace(0, 1, 6).reshape(2, 3)
    batch = jcl.Batch(x, jnp.array([0, 1]), jnp.array([0, 0]))
    out, _ = clf.apply(params, state, x, batch.task)
    fwd = jcl.Forward(params, state, batch, out, {})
    active = jnp.ones((4, 4, 2), bool)
    for t in (1, 3):
        ctx = jcl.TaskCtx(jnp.int32(t), None, active)
        got = lwf.loss(teacher, fwd, ctx)[0]['distill']
        want = plain.loss(teacher, fwd, ctx)[0]['distill']
        np.testing.assert_allclose(got, (1 - 1 / (t + 1)) * want, rtol=1e-6)
        m = jcl.compose(('lwf', lwf), ('si', jcl.methods.si(clf, c=1.0)))
        terms = m.loss(m.init(jcl.Snapshot(params, state), ctx), fwd, ctx)[0]
        ce = jcl.methods.supervised().loss((), fwd, ctx)[0]['loss']
        np.testing.assert_allclose(terms['ce/loss'], ce / (t + 1),
                                   rtol=1e-6)
        assert m.replays
    assert not jcl.compose(('si', jcl.methods.si(clf, c=1.0))).replays
