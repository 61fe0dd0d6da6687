"""Side-by-side benchmarks: makemore_jax against the lecture's loops and PyTorch's best.

``python -m benchmarks [--quick] [--only NAME] [--device cpu|gpu]`` runs every
registered task, each in its own process, and writes
``benchmarks/results/<machine>.json`` and ``benchmarks/RESULTS.md``.

A new task is one function registered with ``harness.register`` in a module
under ``benchmarks/tasks/`` (and imported by ``tasks/__init__.py``): it builds
``harness.Candidate``s, times them with ``harness.measure`` and returns
``harness.result(...)`` with its checks and speed-up targets.
"""
