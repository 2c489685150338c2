"""The public sweep API (jcl.run_sweep): grid points x seeds as one
vmapped program, the point chosen on validation data, resuming."""

import numpy as np
import pytest

import jcl
from jcl.core.errors import ConfigError
from jcl.methods import build_learner
from jcl.sweep.grid import choose
from jcl.tasks import catalog, protocols

SPEC = catalog.protocol_spec('split-mnist')


@pytest.fixture(scope='module')
def proto(arrays):
    return protocols.class_split('synthetic', arrays, 'task')


def learner_for(proto, method='si', iters=20, count=None):
    def make(static):
        learner = build_learner(proto, SPEC, jcl.methods.parse(method),
                                hidden=(16,), iters=iters, batch=16,
                                static_max=static)
        if count is None:
            return learner

        def make_model(hp):
            count.append(1)          # once per trace of a program
            return learner.make_model(hp)
        return learner._replace(make_model=make_model)
    return make


def test_a_grid_is_one_program(proto):
    """Tracing builds the model a fixed number of times per program, so
    three grid points x two seeds trace as often as one row does."""
    counts = {}
    for grid in ({'si.c': [1.0]}, {'si.c': [0.0, 1.0, 10.0]}):
        count = []
        jcl.run_sweep(learner_for(proto, count=count), proto,
                      hparams={'lr': 1e-3, 'si.c': 1.0, 'si.xi': 0.1},
                      grid=grid, seeds=[0, 1], progress=None)
        counts[len(grid['si.c'])] = len(count)
    assert counts[3] == counts[1] > 0


def test_the_point_is_chosen_on_validation_data(proto):
    """A learning rate too small to learn anything loses to one that
    learns, on the validation split held out of the training data."""
    got = jcl.run_sweep(learner_for(proto, 'none', iters=30), proto,
                        hparams={'lr': 1e-3}, grid={'lr': [1e-9, 1e-2]},
                        seeds=[3, 4], validation=0.2, progress=None)
    assert got.R.shape == got.R_valid.shape == (2, 2, 5, 5)
    assert [p['lr'] for p in got.points] == [1e-9, 1e-2]
    assert got.chosen == 1 and got.seeds == [3, 4]
    final = got.R_valid[..., -1, :].mean(axis=(1, 2))
    assert final[1] > final[0] + 0.3
    no_valid = jcl.run_sweep(learner_for(proto, 'none', iters=2), proto,
                             hparams={'lr': 1e-3}, progress=None)
    assert no_valid.chosen is None and no_valid.R_valid is None


def test_choose_reads_the_validation_matrices_only():
    R_valid = np.zeros((3, 2, 2, 2))
    R_valid[2, :, 1] = [0.6, 0.6]
    R_valid[0, 0, 1] = 1.0          # one seed alone does not win
    assert choose(R_valid) == 2


def test_seed_chunks_and_resuming_give_the_same_numbers(proto, tmp_path):
    kw = dict(hparams={'lr': 1e-3, 'si.c': 1.0, 'si.xi': 0.1},
              grid={'si.c': [0.0, 5.0]}, seeds=[0, 1], progress=None)
    whole = jcl.run_sweep(learner_for(proto), proto, **kw,
                          checkpoint_dir=str(tmp_path))
    # the last two checkpoints are kept (the run's whole folder keeps none)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'ckpt-0.npz', 'ckpt-0.prev.npz']
    again = jcl.run_sweep(learner_for(proto), proto, **kw,
                          checkpoint_dir=str(tmp_path))  # all tasks done
    np.testing.assert_array_equal(again.R, whole.R)
    chunked = jcl.run_sweep(learner_for(proto), proto, seed_chunk=1, **kw)
    assert chunked.R.shape == whole.R.shape == (2, 2, 5, 5)
    np.testing.assert_allclose(chunked.R, whole.R, atol=0.02)


def test_bad_sweeps_are_refused(proto):
    with pytest.raises(ConfigError, match='not a hyperparameter'):
        jcl.run_sweep(learner_for(proto), proto,
                      hparams={'lr': 1e-3, 'si.c': 1.0, 'si.xi': 0.1},
                      grid={'ewc.lambda': [1.0]}, progress=None)
    with pytest.raises(ConfigError, match="need 'lr'"):
        jcl.run_sweep(learner_for(proto), proto,
                      hparams={'si.c': 1.0, 'si.xi': 0.1}, progress=None)
