"""The references' hyperparameter values per protocol and scenario.

The NMI code's grid-searched values (``params/param_values.py`` of
GMvandeVen/continual-learning), which it found with Class-IL over all
output units; see BUILD_NOTES.md. Protocols without their own values take
the scenario's split MNIST value.

>>> ewc_lambda('split-mnist', 'domain'), si_c('permuted-mnist', 'class')
(10000000000.0, 5.0)
"""


def _table(values, fallback):
    """Defaults from a ``{(protocol, scenario): value}`` table."""
    def get(protocol, scenario):
        return values.get((protocol, scenario),
                          values.get(scenario, fallback))
    return get


ewc_lambda = _table({
    ('split-mnist', 'task'): 1e5, ('split-mnist', 'domain'): 1e10,
    ('split-mnist', 'class'): 1e9, ('permuted-mnist', 'task'): 100.0,
    ('permuted-mnist', 'domain'): 100.0,
    ('permuted-mnist', 'class'): 100.0, 'task': 1e5, 'domain': 1e10,
    'class': 1e9}, 1e5)

si_c = _table({
    ('split-mnist', 'task'): 10.0, ('split-mnist', 'domain'): 5e4,
    ('split-mnist', 'class'): 5e3, ('permuted-mnist', 'task'): 10.0,
    ('permuted-mnist', 'domain'): 10.0, ('permuted-mnist', 'class'): 5.0,
    'task': 10.0, 'domain': 5e4, 'class': 5e3}, 10.0)

xdg_proportion = _table({('split-mnist', 'task'): 0.9,
                         ('permuted-mnist', 'task'): 0.6}, 0.9)


def lwf_class_mean(protocol, scenario):
    """LwF's distillation is summed over classes (SPEC.md, the NMI code
    since May 2019) except on permuted MNIST, whose published numbers
    (arXiv 1809.10635, 2018) come from the code that averaged over
    classes: jcl measures 73.75 with the mean and 37.28 with the sum
    against the published 72.64 (BUILD_NOTES.md)."""
    del scenario  # unused
    return 1.0 if protocol == 'permuted-mnist' else 0.0


def fisher_samples(protocol, scenario):
    """The NMI code uses the whole task (0 here) for split protocols,
    1000 samples for permuted MNIST (60,000 examples per task). On the
    ResNet protocols jcl's choice is 200: the Fisher takes one backward
    pass per output unit and example (about 0.23 s per example on one
    CPU core for ResNet-18 at 32x32), so the whole task would cost more
    than training on it."""
    del scenario  # unused
    return {'permuted-mnist': 1000.0, 'offline-sequence': 200.0,
            'image-folders': 200.0}.get(protocol, 0.0)


def buffer_per_class(protocol, scenario):
    """Examples stored per class by the buffer methods (the NMI code's
    ``--budget``): 100, and 10 on permuted MNIST (60,000 examples per
    task, 10 classes each)."""
    del scenario  # unused
    return 10.0 if protocol == 'permuted-mnist' else 100.0


# BI-R: the NMI 2022 code's values (param_values.py) on split MNIST and
# its ten permutations; the BI-R paper's code's on permuted MNIST with
# 100 permutations is `--set bir.dg_prop=0.8 --set bir.t2=1`.
bir_dg_prop = _table({
    ('split-mnist', 'task'): 0.0, ('split-mnist', 'domain'): 0.1,
    ('split-mnist', 'class'): 0.1, ('permuted-mnist', 'task'): 0.0,
    ('permuted-mnist', 'domain'): 0.5, ('permuted-mnist', 'class'): 0.7,
    'task': 0.0, 'domain': 0.5, 'class': 0.7}, 0.0)


def bir_task_gates(protocol, scenario):
    """The NMI code gates by context (task) in Domain-IL, by class
    otherwise."""
    del protocol  # unused
    return 1.0 if scenario == 'domain' else 0.0


def bir_t2(protocol, scenario):
    """Distillation scaled by ``T**2``: no in the NMI 2022 code (the
    default here), yes in the BI-R paper's code and SPEC.md."""
    del protocol, scenario  # unused
    return 0.0
