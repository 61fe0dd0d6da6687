"""Runs: what `makemore train`, `tune` and `mix` do, and ``makemore_jax.train``, ``tune`` and ``mix`` too.

A run owns its whole job: the settings, the input, counting or initialising,
the compiled chunks of steps, evaluation, the best model by dev, every write
to its work directory (under the lock), resuming, and the events it tells
whoever watches. The command line parses flags, starts a run and prints its
events; the Python API starts the same run and returns its outcome.

    training.py   TrainingRun: one training run, from settings to saved model
    tuning.py     tune: the n-gram grid on dev, the best saved
    mixing.py     mix: a mixture of trained work directories, weights on dev
    workdir.py    a work directory holds one run: the lock, the first save replacing another run whole
    inputs.py     the input: a file or a list of words, read by one set of rules; a host's part
    placement.py  where a run computes: one device, several, several hosts
    events.py     what a run tells whoever watches
    tensorboard.py  the run's curves for TensorBoard, written when it saves
"""
