"""Method names and compositions through the command line."""

import json

import numpy as np

from jcl import cli
from jcl.methods import catalog as method_catalog
from jcl.methods.assemble import build_learner
from jcl.tasks import catalog


def test_compositions_run_end_to_end(tmp_path, capsys):
    """Each part of a composition does its work: the loss curves show the
    replay and the penalty switch on after the first task, XdG's value
    reaches the model, and separate networks forget nothing at all."""
    out = tmp_path / 'm'
    code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                     'task', '--method', 'ewc+xdg,gr-distill+si,separate',
                     '--set', 'ewc.lambda=100', '--iters', '15',
                     '--out', str(out)])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / 'summary.json').read_text())
    assert set(summary) == {'ewc+xdg', 'gr-distill+si', 'separate'}
    assert summary['ewc+xdg']['hp']['ewc.lambda'] == 100.0
    assert summary['ewc+xdg']['hp']['xdg.proportion'] == 0.9
    with np.load(out / 'results.npz') as f:
        terms = {k.split('/loss/')[1]: f[k] for k in f
                 if k.startswith('gr-distill+si/loss/')}
        ewc = f['ewc+xdg/loss/ewc/penalty']
    assert set(terms) == {'loss', 'ce/loss', 'gr-distill/generator/loss',
                          'si/penalty', 'gr-distill/replay/replay',
                          'gr-distill/replay/generator'}
    # [seeds, tasks, steps]: nothing to replay or keep on task 1, then
    # every step of every later task has a replay and a penalty term
    for name in ('gr-distill/replay/replay', 'si/penalty'):
        assert (terms[name][:, 0] == 0).all(), name
        assert (terms[name][:, 1:, 1:] > 0).all(), name
    assert (ewc[:, 0] == 0).all() and (ewc[:, 1:, 1:] > 0).all()
    R = np.asarray(summary['separate']['R'])[0]
    for j in range(5):              # a network per task: nothing forgotten
        assert (R[j:, j] == R[j, j]).all(), R


def test_task_il_only_methods_are_refused_elsewhere(tmp_path, capsys):
    for method in ('xdg', 'separate', 'ewc+xdg'):
        code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                         'class', '--method', method, '--iters', '3',
                         '--out', str(tmp_path / method)])
        err = capsys.readouterr().err
        assert code == 2
        assert 'defined for task-incremental learning only' in err
        assert not (tmp_path / method).exists()


def test_defaults_follow_protocol_and_scenario():
    d = method_catalog.default_hparams(['ewc', 'si'], lr=1e-3,
                                protocol='split-mnist', scenario='domain')
    assert d['ewc.lambda'] == 1e10 and d['si.c'] == 5e4
    d = method_catalog.default_hparams(['ewc'], lr=1e-4,
                                protocol='permuted-mnist', scenario='domain')
    assert d['ewc.lambda'] == 100.0
    # LwF: sum over classes, but the mean on permuted MNIST (2018 code)
    for proto, want in (('split-mnist', 0.0), ('permuted-mnist', 1.0),
                        ('split-fashion-mnist', 0.0)):
        d = method_catalog.default_hparams(['lwf'], lr=1e-3, protocol=proto,
                                    scenario='domain')
        assert d['lwf.class_mean'] == want and d['lwf.temperature'] == 2.0


def test_replay_size_is_a_grid_axis(tmp_path, capsys):
    """Replay sizes share one program (drawn at the largest, masked)."""
    out = tmp_path / 'g'
    code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                     'class', '--method', 'gr', '--iters', '6', '--batch',
                     '16', '--grid', 'gr.replay_size=4,16', '--out',
                     str(out)])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / 'summary.json').read_text())
    assert set(summary) == {'gr[gr.replay_size=4]', 'gr[gr.replay_size=16]'}
    grid = json.loads((out / 'grid.json').read_text())
    sizes = [p['hp']['gr.replay_size'] for p in grid['gr']['points']]
    assert sorted(sizes) == [4.0, 16.0]
    d = method_catalog.default_hparams(['gr'], lr=1e-3, batch=64)
    assert d['gr.replay_size'] == 64.0
    for bad in ('0', '2.5'):
        code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                         'class', '--method', 'gr', '--iters', '2', '--set',
                         f'gr.replay_size={bad}', '--out',
                         str(tmp_path / f'bad{bad}')])
        assert code == 2
        assert 'whole number of replayed inputs' in capsys.readouterr().err


def test_fisher_samples_is_a_per_run_setting(tmp_path, capsys):
    d = method_catalog.default_hparams(['ewc', 'online-ewc'], lr=1e-4,
                                protocol='permuted-mnist', scenario='domain')
    assert d['ewc.fisher_samples'] == 1000.0
    assert d['online-ewc.fisher_samples'] == 1000.0
    d = method_catalog.default_hparams(['ewc'], lr=1e-3, protocol='split-mnist',
                                scenario='class')
    assert d['ewc.fisher_samples'] == 0.0  # the whole task
    code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                     'class', '--method', 'ewc', '--iters', '2', '--grid',
                     'ewc.fisher_samples=10,20', '--out',
                     str(tmp_path / 'g')])
    assert code == 2
    assert 'one value per run' in capsys.readouterr().err
    code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                     'class', '--method', 'ewc', '--iters', '2', '--set',
                     'ewc.fisher_samples=-5', '--out', str(tmp_path / 'b')])
    assert code == 2
    assert 'whole number of examples' in capsys.readouterr().err


def test_fisher_samples_reach_the_method(monkeypatch):
    """``ewc.fisher_samples`` (a shape: the largest over the rows) is what
    the Fisher of the built method draws, 0 meaning the whole task."""
    import importlib

    from jcl.core import tree
    from jcl.core.records import Snapshot, TaskEnd
    ewc_lib = importlib.import_module(
        'jcl.methods.elastic_weight_consolidation')
    seen = []

    def spy(model, end, ctx, *, select, samples, **kw):
        seen.append(samples)
        return tree.zeros_like(select(end.params))

    monkeypatch.setattr(ewc_lib, 'fisher_diagonal', spy)
    proto = catalog.load_protocol('split-mnist', 'class')
    spec = catalog.protocol_spec('split-mnist')
    for static, want in (({'ewc.fisher_samples': 300.0}, 300),
                         ({'ewc.fisher_samples': 0.0}, None), ({}, None)):
        learner = build_learner(proto, spec, ['ewc'], hidden=(8,),
                                iters=1, batch=4, static_max=static)
        hp = {'ewc.lambda': 1.0, 'lr': 1e-3}
        model = learner.make_model(hp)
        method = learner.make_method(hp, model)
        snap = Snapshot(*model.init(__import__('jax').random.PRNGKey(0)))
        state = method.init(snap, None)
        method.consolidate(state, TaskEnd(snap.params, {}, None, None), None)
        assert seen[-1] == want


def test_buffer_methods_through_the_command_line(tmp_path, capsys):
    out = tmp_path / 'b'
    code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                     'class', '--method', 'er,agem,icarl', '--iters', '30',
                     '--set', 'er.per_class=20', '--set', 'icarl.per_class=20',
                     '--out', str(out)])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['er']['hp']['er.per_class'] == 20.0
    acc = {m: s['avg_acc'][0] for m, s in summary.items()}
    # a buffer keeps earlier classes: far above fine-tuning's 1/5
    assert acc['er'] > 0.5 and acc['icarl'] > 0.5, acc
    with np.load(out / 'results.npz') as f:
        assert 'er/loss/er/replay' in f and 'icarl/loss/icarl/bce' in f
        assert 'icarl/loss/ce/loss' not in f  # iCaRL's own objective
    code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                     'task', '--method', 'icarl', '--iters', '3', '--out',
                     str(tmp_path / 'no')])
    assert code == 2
    assert 'defined for class-incremental learning only' in \
        capsys.readouterr().err
    code = cli.main(['run', '--protocol', 'split-mnist', '--scenario',
                     'class', '--method', 'er', '--iters', '3', '--grid',
                     'er.per_class=10,20', '--out', str(tmp_path / 'g')])
    assert code == 2 and 'one value per run' in capsys.readouterr().err


def test_seq_mnist_is_the_der_papers_setting(tmp_path, capsys):
    out = tmp_path / 's'
    code = cli.main(['run', '--protocol', 'seq-mnist', '--scenario',
                     'class', '--method', 'derpp', '--set',
                     'derpp.budget=50', '--set', 'derpp.minibatch=10',
                     '--out', str(out)])
    assert code == 0, capsys.readouterr().err
    cfg = json.loads((out / 'config.json').read_text())
    assert cfg['epochs'] == 1 and cfg['batch'] == 10
    assert cfg['class_outputs'] == 'all' and cfg['hidden'] == [100, 100]
    s = json.loads((out / 'summary.json').read_text())['derpp']
    with np.load(out / 'results.npz') as f:
        loss = f['derpp/loss/loss'][0]
    # one epoch of about 12,000 examples per task in steps of 10
    assert loss.shape[1] >= 1100 and (loss[:, :1100] > 0).all()
    assert s['avg_acc'][0] > 0.5  # a 50-example buffer already helps
