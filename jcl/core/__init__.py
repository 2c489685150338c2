"""The contracts: what a method, a model and a task are, and their algebra.

* :mod:`jcl.core.records`: the records passed between the parts (batches,
  contexts, snapshots, the training carry);
* :mod:`jcl.core.method` and :mod:`jcl.core.model`: a method and a model as
  pure functions; :mod:`jcl.core.combine`: their combinators;
* :mod:`jcl.core.taskdata`: device-resident task data;
  :mod:`jcl.core.over_task` and :mod:`jcl.core.per_example`: what a method
  author needs at a task's end (its data in chunks, per-example gradients);
* :mod:`jcl.core.losses`, :mod:`jcl.core.tree`, :mod:`jcl.core.errors`.

Nothing here imports any other room of jcl.
"""
