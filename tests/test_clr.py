"""CLR's guarantees, checked on a small ResNet-18 run: after every task
each earlier task's accuracy, its bank and the backbone's bytes are
unchanged; the reference's weight penalty by hand; pre-trained weights
reach the model before training."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcl.core import taskdata as data_lib
from jcl.core import tree
from jcl.core.errors import ConfigError
from jcl.core.records import Forward, TaskCtx
from jcl.methods.assemble import build_learner
from jcl.methods.weight_penalty import norm_penalty, safe_norm
from jcl.models import backbone
from jcl.models import torchvision_import as tvi
from jcl.tasks import catalog, sequences
from jcl.training.learner import init_state
from jcl.training.optim import sgd
from jcl.training.task import train_task

sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'models'))
import seeded_resnet  # noqa: E402

SIZE = 28


def _source(seed, classes=10, per_class=290, test=5):
    """28x28 grey 'images': class c is a bright bar at row 2c (source-
    dependent column shift and noise)."""
    rng = np.random.RandomState(seed)

    def make(n):
        y = np.repeat(np.arange(classes), n)
        x = rng.randint(0, 60, (len(y), SIZE, SIZE)).astype(np.uint8)
        for c in range(classes):
            x[y == c, 2 * c + 3:2 * c + 5, seed:seed + 20] = 240
        return x, y.astype(np.uint8)
    (tx, ty), (ex, ey) = make(per_class), make(test)
    return dict(train_x=tx, train_y=ty, test_x=ex, test_y=ey)


@pytest.fixture(scope='module')
def proto():
    tasks = (('a', None), ('b', None), ('c', None))
    sources = {t: _source(i + 1) for i, t in enumerate(tasks)}
    return sequences.offline_sequence(tasks=tasks, size=SIZE, sources=sources,
                                      test_per_class=5)


def test_offline_sequence_layout(proto):
    assert proto.train.count.tolist() == [2560] * 3     # round(2560/10)
    assert proto.valid.count.tolist() == [260] * 3      # round(256/10)
    assert proto.test.count.tolist() == [50] * 3
    assert proto.num_outputs == 30
    assert proto.active[2, 1].nonzero()[0].tolist() == list(range(10, 20))
    b = data_lib.gather(proto.train, proto.train.index[2, :3],
                        proto.train.origin[2, :3])
    assert np.asarray(b.y).min() >= 20 and np.asarray(b.task).tolist() == \
        [2, 2, 2]
    x = np.asarray(proto.prepare(jnp.asarray(b.x)))
    assert x.shape == (3, SIZE, SIZE, 3)
    # validation and training images of a task are different examples
    tr = set(np.asarray(proto.train.index[0, :2560]).tolist())
    assert len(tr) == 2560


def _init(learner, hp, pretrained=None):
    """``init_state`` compiled once (eager, a ResNet's init runs op by
    op)."""
    return jax.jit(lambda h, k, p: init_state(learner, h, k, p))(
        hp, jax.random.PRNGKey(0), pretrained)


def _learner(proto, method, iters=6):
    spec = catalog.protocol_spec('offline-sequence')
    return build_learner(proto, spec, [method], hidden=(),
                                 iters=iters, batch=8)


@pytest.mark.parametrize('method', ['clr', 'separate', 'supsup'])
def test_clr_never_changes_earlier_tasks_or_the_backbone(proto, method):
    """(``separate``: one fine-tuned copy per task, its 'backbone' the
    empty shared part.)"""
    learner = _learner(proto, method)
    hp = {'lr': jnp.float32(1e-2), f'{method}.l2': jnp.float32(1e-5)}
    state = _init(learner, hp)
    h0 = backbone.backbone_hash(state.params)
    train = data_lib.to_device(proto.train)
    test = data_lib.to_device(proto.test)
    active = jnp.asarray(proto.active)
    step = jax.jit(lambda s, t: train_task(learner, s, hp, train, test,
                                           active, t))
    accs, banks = [], []
    for t in range(proto.num_tasks):
        before = state
        state, _, acc = step(state, jnp.int32(t))
        accs.append(np.asarray(acc))
        assert backbone.backbone_hash(state.params) == h0
        # every other task's bank (kernels, BN, head, BN statistics) is
        # bit-identical; this task's has moved
        for name, new, old in zip(
                tree.leaf_names(state.params['banks']),
                jax.tree.leaves(state.params['banks']),
                jax.tree.leaves(before.params['banks'])):
            others = [u for u in range(proto.num_tasks) if u != t]
            assert np.array_equal(np.asarray(new)[others],
                                  np.asarray(old)[others]), name
        stats = zip(jax.tree.leaves(state.model_state),
                    jax.tree.leaves(before.model_state))
        for new, old in stats:
            others = [u for u in range(proto.num_tasks) if u != t]
            assert np.array_equal(np.asarray(new)[others],
                                  np.asarray(old)[others])
        banks.append(jax.tree.map(lambda a: np.asarray(a)[t],
                                  state.params['banks']))
    for t in range(1, proto.num_tasks):
        for j in range(t):
            assert accs[t][j] == accs[j][j]
    # and each task did train its own bank
    first = jax.tree.leaves(banks[0])[0]
    assert not np.array_equal(first, np.asarray(jax.tree.leaves(
        _init(learner, hp).params['banks'])[0])
        [0])


def test_sgd_moves_the_backbone(proto):
    learner = _learner(proto, 'sgd', iters=2)
    hp = {'lr': jnp.float32(1e-2), 'sgd.l2': jnp.float32(1e-5)}
    state = _init(learner, hp)
    h0 = backbone.backbone_hash(state.params)
    state, _, _ = jax.jit(lambda s: train_task(
        learner, s, hp, data_lib.to_device(proto.train),
        data_lib.to_device(proto.test), jnp.asarray(proto.active),
        jnp.int32(0)))(state)
    assert backbone.backbone_hash(state.params) != h0


def test_norm_penalty_by_hand():
    params = {'params': {'w': jnp.array([3.0, 4.0]),
                         'f': jnp.ones(3)},
              'banks': {'k': jnp.array([[1.0, 0.0], [0.0, 2.0]]),
                        'z': jnp.zeros((2, 3))}}

    def labels(p):
        return {'params': {'w': 'params', 'f': 'frozen'},
                'banks': {'k': 'params', 'z': 'params'}}
    def banked(p):
        return {'params': {'w': False, 'f': False},
                'banks': {'k': True, 'z': True}}
    m = norm_penalty(labels, banked, strength=0.1)

    def value(p, t):
        ctx = TaskCtx(jnp.int32(t), None, None)
        return m.loss((), Forward(p, {}, None, {}, {}), ctx)[0]['l2']
    # task 1: 0.1 * (|w| + |k[1]| + |z[1]|) = 0.1 * (5 + 2 + 0)
    assert np.isclose(float(value(params, 1)), 0.7)
    g = jax.grad(value)(params, 1)
    assert np.all(np.isfinite(np.asarray(g['banks']['z'])))   # 0 at 0
    assert np.array_equal(np.asarray(g['banks']['k'])[0], [0.0, 0.0])
    np.testing.assert_allclose(g['params']['w'], 0.1 * np.array([.6, .8]))
    assert float(safe_norm(jnp.zeros(3))) == 0.0


def test_norm_penalty_finds_banks_by_the_models_mask_not_a_name():
    # a bank under any name counts by its row; without a mask, whole
    params = {'a': {'bank': jnp.array([[3.0, 4.0], [0.0, 1.0]])},
              'banks': {'w': jnp.array([1.0, 0.0])}}

    def labels(p):
        return {'a': {'bank': 'params'}, 'banks': {'w': 'params'}}

    def banked(p):
        return {'a': {'bank': True}, 'banks': {'w': False}}
    ctx = TaskCtx(jnp.int32(0), None, None)
    fwd = Forward(params, {}, None, {}, {})
    by_row = norm_penalty(labels, banked, strength=1.0)
    assert np.isclose(float(by_row.loss((), fwd, ctx)[0]['l2']), 5.0 + 1.0)
    whole = norm_penalty(labels, strength=1.0)
    assert np.isclose(float(whole.loss((), fwd, ctx)[0]['l2']),
                      np.sqrt(26.0) + 1.0)


def test_pretrained_weights_reach_every_bank(proto):
    learner = _learner(proto, 'clr')
    hp = {'lr': jnp.float32(1e-3), 'clr.l2': jnp.float32(1e-5)}
    model = learner.make_model(hp)
    sd = seeded_resnet.state_dict(tvi.torchvision_keys(18))
    pre = backbone.pretrained_overlay(model, sd, 18)
    state = _init(learner, hp, pre)
    conv = np.asarray(state.params['params']['layer3_1']['conv2']['kernel'])
    np.testing.assert_array_equal(
        conv, sd['layer3.1.conv2.weight'].transpose(2, 3, 1, 0))
    scale = np.asarray(state.params['banks']['layer1_0']['bn1']['scale'])
    for t in range(proto.num_tasks):
        np.testing.assert_array_equal(scale[t], sd['layer1.0.bn1.weight'])
    var = np.asarray(state.model_state['batch_stats']['bn1']['var'])
    np.testing.assert_array_equal(var[2], sd['bn1.running_var'])
    # the heads are not taken from the file (a new head per task)
    assert ('banks', 'fc_kernel') not in pre['params']


def test_backbone_methods_need_a_backbone_protocol():
    pool = _source(1)
    from jcl.tasks import protocols
    mlp = protocols.class_split('split-mnist', pool, 'task',
                                classes_per_task=2)
    with pytest.raises(ConfigError, match='offline-sequence'):
        build_learner(mlp, catalog.protocol_spec('split-mnist'),
                              ['clr'], hidden=(8,), iters=1,
                              batch=2).make_model({})
    with pytest.raises(ConfigError, match='one way only'):
        from jcl.methods.catalog import check_models
        check_models(['clr', 'sgd-ll'])


def test_small_classes_still_get_a_validation_split():
    y = np.repeat(np.arange(3), [20, 300, 5])
    tr, va = sequences._train_valid(y, 256, 26, np.random.RandomState(0))
    assert set(tr.tolist()).isdisjoint(va.tolist())
    assert np.bincount(y[va]).tolist() == [2, 26, 1]
    assert np.bincount(y[tr]).tolist() == [18, 256, 4]


def test_eft_trains_the_base_on_the_first_task_only(proto):
    learner = _learner(proto, 'eft', iters=2)
    hp = {'lr': jnp.float32(1e-2), 'eft.l2': jnp.float32(1e-5),
          'eft.train_base': jnp.float32(1.0)}
    state = _init(learner, hp)
    hashes = [backbone.backbone_hash(state.params)]
    step = jax.jit(lambda s, t: train_task(
        learner, s, hp, data_lib.to_device(proto.train),
        data_lib.to_device(proto.test), jnp.asarray(proto.active), t))
    for t in range(2):
        state, _, _ = step(state, jnp.int32(t))
        hashes.append(backbone.backbone_hash(state.params))
    assert hashes[1] != hashes[0] and hashes[2] == hashes[1]


def test_separate_trains_one_bank_row_with_the_whole_banks_numbers(proto):
    """``separate`` (a network per task) trains task 1's row alone
    (jcl.training.banks): the same parameters as differentiating every
    task's copy
    (compared under plain SGD: Adam turns rounding noise in near-zero
    gradients into full-size steps), with one copy's Adam state."""
    sliced = _learner(proto, 'separate', iters=2)
    assert sliced.bank_slices
    hp = {'lr': jnp.float32(1e-2)}
    kernel = jax.eval_shape(lambda: _init(sliced, hp)).opt_state[0].mu[
        'banks']['layer1_0']['conv1']['kernel']
    assert kernel.shape == (3, 3, 64, 64)        # one task's copy
    train = data_lib.to_device(proto.train)
    test = data_lib.to_device(proto.test)
    out = {}
    for name, slices in (('sliced', True), ('whole', False)):
        learner = sliced._replace(bank_slices=slices, make_optimizer=sgd)
        out[name], _, _ = jax.jit(lambda s, lr=learner: train_task(
            lr, s, hp, train, test, jnp.asarray(proto.active),
            jnp.int32(1)))(_init(learner, hp))
    for name, a, b in zip(tree.leaf_names(out['whole'].params),
                          jax.tree.leaves(out['sliced'].params),
                          jax.tree.leaves(out['whole'].params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6,
                                   err_msg=name)
