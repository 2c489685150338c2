"""The experiment driver: every (scenario, method) of a configuration.

Each method runs in groups of rows (grid points x seeds, vmapped), is
checkpointed after every task and inside tasks, and leaves
``runs/METHOD/result.npz``; a scenario's summaries and plots are written
once all its methods are done (``jcl report`` rebuilds them from the
``result.npz`` files).
"""

import os
import time

import numpy as np

from jcl import methods
from jcl.analysis import results
from jcl.analysis.evaluate import average_accuracy
from jcl.cli.folders import run_folder, scenario_folder
from jcl.logs import MetricLog
from jcl.methods.assemble import build_learner
from jcl.sweep import distributed
from jcl.sweep.grid import grid_points, rows, static_max
from jcl.sweep.run import run_sweep
from jcl.tasks import catalog


def load_arrays(cfg, log=print):
    """The data set of the configuration (raises a DataError when it is
    missing or corrupt, before anything is written); with ``features``,
    its images mapped through the frozen front end once."""
    arrays = catalog.load_arrays(cfg['protocol'], cfg['data_dir'])
    if not cfg.get('features'):
        return arrays
    from jcl.weights import front_end as pretrain
    model, params, state, meta = pretrain.load_front_end(cfg['features'])
    log(f"jcl: features of {cfg['features']} ({meta['network']} trained on "
        f"{meta['data']}, test accuracy {float(meta['test_accuracy']):.2%})")
    return pretrain.feature_arrays(arrays, model, params, state)


def protocols_for(cfg, scenario, seeds, arrays):
    """The protocol of a seed group: one shared protocol, or one per seed
    when the task order depends on the seed (shuffled class order, or the
    permutations of permuted MNIST, which are drawn from the seed)."""
    spec = catalog.protocol_spec(cfg['protocol'])
    kw = dict(num_tasks=cfg['num_tasks'], arrays=arrays,
              image_size=cfg.get('image_size', 224),
              data_dir=cfg.get('data_dir'),
              validation=cfg.get('validation', 0.0),
              class_outputs=cfg.get('class_outputs', 'seen'),
              features=bool(cfg.get('features')))
    if spec.kind == 'permuted':
        return [catalog.load_protocol(cfg['protocol'], scenario,
                                      perm_seed=s, **kw) for s in seeds]
    if cfg['class_order'] == 'shuffled':
        return [catalog.load_protocol(
            cfg['protocol'], scenario, class_order=catalog.class_order(
                cfg['protocol'], 'shuffled', s), **kw) for s in seeds]
    return catalog.load_protocol(cfg['protocol'], scenario, **kw)


def sequence_schedule(cfg):
    """A task sequence on a backbone is streamed as the CLR reference trains
    it: up to ``epochs`` epochs per task (the learning rate x0.1 every
    ``epochs // 3``), the best validation epoch kept, stopping 22 epochs
    after the last improvement."""
    from jcl.training import epochs as epochs_lib
    epochs = cfg['epochs']
    return epochs_lib.Schedule(
        epochs=epochs, batch_size=cfg['batch'],
        decay_every=max(1, epochs // 3), select_best=True,
        patience=epochs_lib.REFERENCE_PATIENCE, max_steps=cfg.get('max_steps'))


def load_backbone(cfg):
    """The state dict of ``cfg['backbone']`` (``None`` without one); a
    refused file raises a DataError before anything is written."""
    if not cfg.get('backbone'):
        return None
    from jcl.weights.statedict import load_state_dict
    return load_state_dict(cfg['backbone'])


def backbone_overlay(cfg, spec, weights):
    """``model -> overlay``: the backbone ``weights`` (of
    ``cfg['backbone']``) on the model's ResNet."""
    from jcl.models.backbone import pretrained_overlay
    return lambda model: pretrained_overlay(
        model, weights, int(spec.backbone[6:]), source=cfg['backbone'])


class _Setup:
    """One (scenario, method) of a configuration, ready for the sweep."""

    def __init__(self, cfg, scenario, method, arrays):
        self.parts = methods.parse(method)
        self.method = method
        self.spec = catalog.protocol_spec(cfg['protocol'])
        self.hp = cfg['hparams'][f'{scenario}/{method}']
        self.grid = {k: v for k, v in cfg.get('grid', {}).items()
                     if k in self.hp}
        seed0 = cfg.get('first_seed', 0)
        self.seeds = list(range(seed0, seed0 + cfg['seeds']))
        self.cfg = cfg
        shared = protocols_for(cfg, scenario, self.seeds[:1], arrays)
        per_seed = isinstance(shared, list)
        self.first = shared[0] if per_seed else shared
        self.protocol = ((lambda s: protocols_for(cfg, scenario, [s],
                                                  arrays)[0])
                         if per_seed else shared)

    def make_learner(self, static):
        cfg = self.cfg
        own = cfg.get('schedules', {}).get(self.method, {})
        return build_learner(
            self.first, self.spec, self.parts, hidden=tuple(cfg['hidden']),
            gen_hidden=tuple(cfg.get('gen_hidden') or ()) or None,
            iters=own.get('iters', cfg['iters']),
            batch=own.get('batch', cfg['batch']), epochs=cfg.get('epochs'),
            reinit=cfg.get('reinit', False), static_max=static)

    def check(self, weights):
        """Builds what the sweep will build (the learner, the backbone's
        overlay), so that a refusal comes before the folder is written."""
        learner = self.make_learner(static_max(rows(
            self.hp, grid_points(self.grid), self.seeds)))
        if weights is not None:
            backbone_overlay(self.cfg, self.spec, weights)(
                learner.make_model(self.hp))


def check_config(cfg, arrays, weights=None):
    """Raises the error a run of ``cfg`` would meet while building its
    learners (a refused combination, a backbone that is no such ResNet);
    writes nothing."""
    for scenario in cfg['scenarios']:
        for method in cfg['methods']:
            _Setup(cfg, scenario, method, arrays).check(weights)


def _run_method(cfg, folder, scenario, method, arrays, log, mesh,
                weights=None):
    rfolder = run_folder(folder, cfg, scenario, method)
    if distributed.is_main():
        os.makedirs(rfolder, exist_ok=True)
    setup = _Setup(cfg, scenario, method, arrays)
    sequence = setup.spec.kind == 'sequence'
    t0 = time.time()
    if sequence and weights is None:
        weights = load_backbone(cfg)
    logs = MetricLog.open(
        cfg.get('log', ['csv']), os.path.join(rfolder, 'logs'),
        every=cfg.get('log_every', 10), main=distributed.is_main(),
        group=f'{os.path.basename(os.path.abspath(folder))}/{scenario}/'
              f'{method}', config={'protocol': cfg['protocol'],
                                   'scenario': scenario, 'method': method})
    try:
        got = run_sweep(
            setup.make_learner, setup.protocol, hparams=setup.hp,
            grid=setup.grid, seeds=setup.seeds, seed_chunk=cfg['seed_chunk'],
            joint=methods.catalog.is_joint(setup.parts),
            mesh=None if sequence else mesh,
            schedule=sequence_schedule(cfg) if sequence else None,
            pretrained=(backbone_overlay(cfg, setup.spec, weights)
                        if sequence else None),
            checkpoint_dir=rfolder,
            checkpoint_every=cfg.get('checkpoint_every'),
            progress=log, label=f'[{scenario}/{method}]', metric_log=logs)
    finally:
        logs.close()
    result = result_arrays(got, sorted(setup.hp))
    if distributed.is_main():
        rpath = os.path.join(rfolder, 'result.npz')
        np.savez(rpath + '.tmp.npz', **result)
        os.replace(rpath + '.tmp.npz', rpath)
        for name in os.listdir(rfolder):
            if name.startswith('ckpt-') and name.endswith('.npz'):
                os.remove(os.path.join(rfolder, name))
    distributed.barrier(f'{scenario}/{method} written')
    log(f'[{scenario}/{method}] done in {time.time() - t0:.0f}s')
    return result


def result_arrays(got, names) -> dict:
    """A sweep's result as ``result.npz`` holds it: one row per (grid
    point, seed), point-major, and the hyperparameters of every row."""
    def flat(a):
        return None if a is None else a.reshape((-1,) + a.shape[2:])

    rows = [(pt, s) for pt in got.points for s in got.seeds]
    result = {
        'R': flat(got.R), 'R_init': flat(got.R_init),
        'seeds': np.array([s for _, s in rows]), 'seconds': got.seconds,
        'hp_names': np.asarray(names),
        'hp_values': np.asarray([[pt[k] for k in names]
                                 for pt, _ in rows]).T,
    }
    for key, value in (('R_valid', got.R_valid), ('R_task', got.R_task)):
        if value is not None:
            result[key] = flat(value)
    for k, v in got.metrics.items():
        result[f'loss/{k}'] = flat(v)
    for k, v in (got.extras or {}).items():
        result[f'extra/{k}'] = flat(v)
    return result


def finished_results(folder, cfg, scenario) -> dict:
    """``{method: result}`` of the methods of a scenario that finished."""
    done = {}
    for m in cfg['methods']:
        p = os.path.join(run_folder(folder, cfg, scenario, m), 'result.npz')
        if os.path.exists(p):
            with np.load(p) as f:
                done[m] = dict(f)
    return done


def write_scenario(folder, cfg, scenario, done):
    """The scenario's summaries, tables and plots (all from ``done``)."""
    sfolder = scenario_folder(folder, cfg, scenario)
    summary = results.write_all(sfolder, results.expand_grid(done),
                                meta(cfg, scenario))
    if cfg.get('grid'):
        results.write_grid(sfolder, done, cfg['grid'])
    return summary


def run_config(cfg, folder, log=print, arrays=None, mesh=None,
               weights=None):
    """Runs every (scenario, method) of ``cfg``; resumable.

    With several processes, all train and process 0 alone reads and
    writes the folder (the others learn from it what is finished).
    """
    arrays = load_arrays(cfg) if arrays is None else arrays
    by_scenario, main = {}, distributed.is_main()
    for scenario in cfg['scenarios']:
        done = finished_results(folder, cfg, scenario) if main else {}
        for method in cfg['methods']:
            if distributed.broadcast(method in done):
                log(f'[{scenario}/{method}] finished earlier, kept')
                continue
            done[method] = _run_method(cfg, folder, scenario, method,
                                       arrays, log, mesh, weights)
        if not main:
            continue
        summary = write_scenario(folder, cfg, scenario, done)
        by_scenario[scenario] = summary
        print_summary(summary, scenario, log)
    if len(cfg['scenarios']) > 1 and main:
        results.plot_curves(by_scenario,
                            os.path.join(folder, 'accuracy.png'),
                            title=cfg['protocol'])
        with open(os.path.join(folder, 'summary.md'), 'w') as f:
            for s in cfg['scenarios']:
                with open(os.path.join(folder, s, 'summary.md')) as g:
                    f.write(g.read() + '\n')
    return by_scenario


def meta(cfg, scenario):
    return {'protocol': cfg['protocol'], 'scenario': scenario,
            'note': (f"{cfg['epochs']} epoch(s)/task" if cfg.get('epochs')
                     else f"{cfg['iters']} iterations/task") +
                    f", batch {cfg['batch']}, "
                    f"class order {cfg['class_order']}" +
                    ''.join(f"; {m}: " + ', '.join(
                        f'{k} {v:g}' for k, v in own.items()
                        if k != 'lr')
                        for m, own in cfg.get('schedules', {}).items()
                        if set(own) - {'lr'})}


def print_summary(summary, scenario, log):
    """The average accuracy and the mean ``R`` matrix of every method;
    entries of tasks not trained yet are in parentheses."""
    for name, s in summary.items():
        R = np.asarray(s['R'])
        log(f'\n{scenario}-incremental / {name}: average accuracy '
            f'{100 * s["avg_acc_mean"]:.2f} ± {100 * s["avg_acc_sem"]:.2f}%'
            f' over {R.shape[0]} seeds')
        Rm = R.mean(0)
        log('  R[i, j] (mean over seeds, %), row i = after task i+1; '
            '(in parentheses: task j not trained yet):')
        for i, row in enumerate(Rm):
            cells = [f'{100 * v:6.2f} ' if j <= i else f'({100 * v:5.1f})'
                     for j, v in enumerate(row)]
            log('   ' + ' '.join(cells) +
                f'  | avg {100 * average_accuracy(Rm)[i]:6.2f}')
