"""Where a compiled call's time goes, by kind of XLA operation, from a jax.profiler trace.

XLA:CPU runs a compiled program as a sequence of thunks (library matmuls,
generated loop fusions, copies) on its worker threads; the trace records each
one. ``profile_by_kind`` traces a few calls, adds up the thunk times per kind
over every worker thread, and divides by the steps run, so the table reads
"of a step's thread time, this much went to matmuls, this much to transposes".
Thread time can exceed wall time where two threads work at once.
"""

from __future__ import annotations

import glob
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable

import jax

# (kind, test on the thunk's name); the first that matches names the kind
KINDS = (
    ("matmuls and reductions in YNNPACK", lambda n: n.startswith("ynn_fusion")),
    ("matmuls in Eigen", lambda n: re.fullmatch(r"dot(_general)?(\.\d+)?", n) is not None),
    ("layout copies (transposes)", lambda n: "copy" in n or "transpose" in n),
    ("other elementwise fusions", lambda n: n.endswith("_fusion") or "fusion" in n or n.startswith("wrapped_")),
)
OTHER = "other thunks"
# bookkeeping spans, and control flow (a loop, a call, a conditional) whose span encloses thunks counted apart
SKIP = ("ThunkExecutor", "SlinkyThreadPool", "ThreadpoolListener", "end: ")
ENCLOSING = ("while", "call", "cond", "conditional")


def kind_of(name: str) -> str:
    base = re.sub(r"\.\d+$", "", name)
    for kind, test in KINDS:
        if test(base) or test(name):
            return kind
    return OTHER


def profile_by_kind(run: Callable[[], object], calls: int, steps_per_call: int) -> dict:
    """{'per_step_s': {kind: thread seconds per step}, 'wall_per_step_s': ..., 'thunks_per_step': ...}.

    run() must block until its work is done. Worker threads are those whose
    trace line is an XLA thread pool's (XLAEigen); the Python thread's spans are
    left out.
    """
    run()  # warm: compiled, caches filled
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir):
            t0 = time.perf_counter()
            for _ in range(calls):
                run()
            wall = time.perf_counter() - t0
        (path,) = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)
        profile = jax.profiler.ProfileData.from_file(path)
    per_kind, thunks = Counter(), 0
    for plane in profile.planes:
        for line in plane.lines:
            if "XLAEigen" not in line.name:
                continue
            for event in line.events:
                if event.name.startswith(SKIP) or re.sub(r"\.\d+$", "", event.name) in ENCLOSING:
                    continue
                per_kind[kind_of(event.name)] += event.duration_ns * 1e-9
                thunks += 1
    steps = calls * steps_per_call
    return {
        "per_step_s": {k: v / steps for k, v in per_kind.most_common()},
        "wall_per_step_s": wall / steps,  # traced, so a little above the untraced time
        "thunks_per_step": thunks / steps,
    }


def table(profiles: dict[str, dict]) -> list[str]:
    """Markdown rows: one column per profiled program, µs of thread time per step and share."""
    names = list(profiles)
    kinds = [k for k, _ in KINDS] + [OTHER]
    rows = ["| kind of operation | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for kind in kinds:
        cells = []
        for name in names:
            per = profiles[name]["per_step_s"]
            total = sum(per.values()) or 1.0
            cells.append(f"{per.get(kind, 0.0) * 1e6:,.0f} µs ({per.get(kind, 0.0) / total:.0%})")
        rows.append(f"| {kind} | " + " | ".join(cells) + " |")
    rows.append(
        "| thread time per step | "
        + " | ".join(f"{sum(profiles[n]['per_step_s'].values()) * 1e6:,.0f} µs" for n in names)
        + " |"
    )
    rows.append(
        "| wall time per step (traced) | "
        + " | ".join(f"{profiles[n]['wall_per_step_s'] * 1e6:,.0f} µs" for n in names)
        + " |"
    )
    rows.append("| thunks per step | " + " | ".join(f"{profiles[n]['thunks_per_step']:.0f}" for n in names) + " |")
    return rows
