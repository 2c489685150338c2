"""Compiled continual training of one row (a seed, a grid point).

A :class:`jcl.training.learner.Learner` is the static description; its
step is scanned over a task (:mod:`jcl.training.task`), with optimisers
(:mod:`jcl.training.optim`), per-task banks (:mod:`jcl.training.banks`),
epochs of a streamed task (:mod:`jcl.training.epochs`), progress and
checkpoints. Rows, devices and the loop over tasks are
:mod:`jcl.sweep`'s.
"""
