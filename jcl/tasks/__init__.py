"""Task sequences: protocols in the three scenarios.

* :mod:`jcl.tasks.protocols`: a task sequence in one scenario (Task-IL: a
  head per task; Domain-IL: one head for all; Class-IL: one growing
  output layer) built from a data set: class splits and permutations;
* :mod:`jcl.tasks.catalog`: the papers' protocols by name with their
  defaults and class orders;
* :mod:`jcl.tasks.sequences`: sequences of tasks from distinct sources
  (the CLR setting).
"""
