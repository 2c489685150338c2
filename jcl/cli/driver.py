"""The experiment driver: every (scenario, method) of a configuration.

Each method runs in groups of rows (grid points x seeds, vmapped), is
checkpointed after every task, and leaves ``runs/METHOD/result.npz``;
a scenario's summaries and plots are written once all its methods are
done (``jcl report`` rebuilds them from the ``result.npz`` files).
"""

import os
import time

import jax
import numpy as np

from jcl import catalog, distributed, recipes, registry, results
from jcl.cli.config import grid_points
from jcl.cli.folders import run_folder, scenario_folder
from jcl.evaluate import average_accuracy
from jcl.runner import run_seeds


def load_arrays(cfg, log=print):
    """The data set of the configuration (raises a DataError when it is
    missing or corrupt, before anything is written); with ``features``,
    its images mapped through the frozen front end once."""
    arrays = catalog.load_arrays(cfg['protocol'], cfg['data_dir'])
    if not cfg.get('features'):
        return arrays
    from jcl import pretrain
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


def run_sequence(cfg, spec, learner, proto, hp, keys, ckpt, label, log):
    """A task sequence on a backbone, streamed as the CLR reference trains
    it: up to ``epochs`` epochs per task (the learning rate x0.1 every
    ``epochs // 3``), the best validation epoch kept, stopping 22 epochs
    after the last improvement; the backbone from ``cfg['backbone']``."""
    from jcl import epochs as epochs_lib
    from jcl import stream
    from jcl.models.backbone import pretrained_overlay
    from jcl.statedict import load_state_dict
    epochs = cfg['epochs']
    schedule = epochs_lib.Schedule(
        epochs=epochs, batch_size=cfg['batch'],
        decay_every=max(1, epochs // 3), select_best=True,
        patience=epochs_lib.REFERENCE_PATIENCE, max_steps=cfg.get('max_steps'))
    model = learner.make_model({k: v[0] for k, v in hp.items()})
    weights = load_state_dict(cfg['backbone'])
    pre = pretrained_overlay(model, weights, int(spec.backbone[6:]),
                             source=cfg['backbone'])
    return stream.run_streamed(learner, proto, hp, keys, schedule,
                               valid=proto.valid, ckpt_path=ckpt,
                               progress=log, label=label, pretrained=pre)


def _run_method(cfg, folder, scenario, method, arrays, log, mesh):
    rfolder = run_folder(folder, cfg, scenario, method)
    if distributed.is_main():
        os.makedirs(rfolder, exist_ok=True)
    parts = registry.parse_method(method)
    spec = catalog.protocol_spec(cfg['protocol'])
    hp = cfg['hparams'][f'{scenario}/{method}']
    points = grid_points({k: v for k, v in cfg.get('grid', {}).items()
                          if k in hp})
    seed0 = cfg.get('first_seed', 0)
    rows = [({**hp, **pt}, s) for pt in points
            for s in range(seed0, seed0 + cfg['seeds'])]
    chunk = cfg['seed_chunk'] * len(points)
    groups = [rows[i:i + chunk] for i in range(0, len(rows), chunk)]
    outs, t0 = [], time.time()
    for gi, group in enumerate(groups):
        seeds = [s for _, s in group]
        proto = protocols_for(cfg, scenario, seeds, arrays)
        first = proto[0] if isinstance(proto, list) else proto
        learner = recipes.build_learner(
            first, spec, parts, hidden=tuple(cfg['hidden']),
            gen_hidden=tuple(cfg.get('gen_hidden') or ()) or None,
            iters=cfg['iters'], batch=cfg['batch'],
            epochs=cfg.get('epochs'), reinit=cfg.get('reinit', False),
            static_max={k: max(h[k] for h, _ in rows) for k in hp})
        keys = jax.numpy.stack([jax.random.PRNGKey(s) for s in seeds])
        hpa = {k: np.array([h[k] for h, _ in group], np.float32)
               for k in hp}
        label = (f'[{scenario}/{method}] seeds {min(seeds)}-{max(seeds)}' +
                 (f' x {len(points)} grid points' if len(points) > 1
                  else ''))
        ckpt = os.path.join(rfolder, f'ckpt-{gi}.npz')
        if spec.kind == 'sequence':
            outs.append(run_sequence(cfg, spec, learner, proto, hpa, keys,
                                     ckpt, label, log))
            continue
        outs.append(run_seeds(
            learner, proto, hpa, keys, joint=registry.is_joint(parts),
            ckpt_path=ckpt, progress=log, label=label, mesh=mesh))
    result = {
        'R': np.concatenate([o.R for o in outs]),
        'R_init': np.concatenate([o.R_init for o in outs]),
        'seeds': np.array([s for _, s in rows]),
        'seconds': np.sum([o.seconds for o in outs], 0),
        'hp_names': np.asarray(sorted(hp)),
        'hp_values': np.asarray([[h[k] for k in sorted(hp)]
                                 for h, _ in rows]).T,
    }
    if outs[0].R_valid is not None:
        result['R_valid'] = np.concatenate([o.R_valid for o in outs])
    if outs[0].R_task is not None:
        result['R_task'] = np.concatenate([o.R_task for o in outs])
    for k in outs[0].metrics:
        result[f'loss/{k}'] = np.concatenate([o.metrics[k] for o in outs])
    for k in (outs[0].extras or {}):
        result[f'extra/{k}'] = np.concatenate([o.extras[k] for o in outs])
    if distributed.is_main():
        rpath = os.path.join(rfolder, 'result.npz')
        np.savez(rpath + '.tmp.npz', **result)
        os.replace(rpath + '.tmp.npz', rpath)
        for gi in range(len(groups)):
            ck = os.path.join(rfolder, f'ckpt-{gi}.npz')
            if os.path.exists(ck):
                os.remove(ck)
    distributed.barrier(f'{scenario}/{method} written')
    log(f'[{scenario}/{method}] done in {time.time() - t0:.0f}s')
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


def run_config(cfg, folder, log=print, arrays=None, mesh=None):
    """Runs every (scenario, method) of ``cfg``; resumable at task ends.

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
                                       arrays, log, mesh)
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
                    f"class order {cfg['class_order']}"}


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
