"""The machine a result was measured on: CPU, cores, library versions, threads, bandwidth."""

from __future__ import annotations

import os
import platform
import re
import sys
import time
from importlib import metadata

import numpy as np

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS", "TORCHINDUCTOR_COMPILE_THREADS")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def describe(device: str) -> dict:
    """Machine, versions and thread counts, as recorded at the top of a results file."""
    import jax
    import torch

    import makemore_jax

    machine = {
        "cpu_model": cpu_model(),
        "cores": usable_cores(),
        "logical_cpus": os.cpu_count(),
        "memory_gib": memory_gib(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "device": device,
    }
    machine_id = f"{_slug(machine['cpu_model'])}-{machine['cores']}c"
    if device == "gpu":
        gpu = jax.devices("gpu")[0].device_kind
        machine["gpu"] = gpu
        machine_id += f"-{_slug(gpu)}"
    machine["id"] = machine_id
    versions = {
        "jax": jax.__version__,
        "jaxlib": _version("jaxlib"),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "optax": _version("optax"),
        "makemore_jax": makemore_jax.__version__,
    }
    threads = {
        "torch_intra_op": torch.get_num_threads(),
        "torch_inter_op": torch.get_num_interop_threads(),
        "xla_cpu": (
            f"XLA:CPU runs on its own thread pool (one thread per usable core by default, "
            f"here {machine['cores']}); torch.set_num_threads does not affect it"
        ),
        "env": {k: os.environ.get(k) for k in THREAD_ENV_VARS if os.environ.get(k) is not None},
    }
    return {"machine": machine, "versions": versions, "threads": threads}


def package_revision() -> str | None:
    """The git commit of the checkout that holds makemore_jax, "+dirty" if makemore_jax/ has local changes."""
    import subprocess

    import makemore_jax

    root = os.path.dirname(os.path.dirname(os.path.abspath(makemore_jax.__file__)))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "makemore_jax"], cwd=root, capture_output=True, text=True
        )
    except OSError:
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def machine_busy_s() -> float | None:
    """CPU seconds all processes have spent busy since boot (from /proc/stat), None where unknown."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class OtherLoad:
    """How much CPU other processes took while a block ran, as a share of the whole machine."""

    def __enter__(self):
        self._start = (time.perf_counter(), machine_busy_s(), own_cpu_s(), os.getloadavg())
        return self

    def __exit__(self, *exc):
        wall0, busy0, own0, self.load_before = self._start
        busy1 = machine_busy_s()
        self.wall_s = time.perf_counter() - wall0
        self.load_after = os.getloadavg()
        if busy0 is None or busy1 is None:
            self.share = None
        else:
            others = (busy1 - busy0) - (own_cpu_s() - own0)
            self.share = max(0.0, others / (self.wall_s * usable_cores()))
        return False

    def to_json(self) -> dict:
        return {
            "other_processes_cpu_share": self.share,
            "load_average_before": list(self.load_before),
            "load_average_after": list(self.load_after),
        }


def copy_bandwidth(nbytes: int, repeats: int) -> float:
    """Bytes moved per second (read + written) by the best of `repeats` numpy copies of nbytes.

    With nbytes far above the last-level cache this is main-memory bandwidth;
    with a small buffer, copied again and again, it is cache bandwidth.
    """
    src = np.ones(nbytes, np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # fault the pages in
    inner = max(1, (64 << 20) // nbytes)  # keep each timed chunk well above timer resolution
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            np.copyto(dst, src)
        best = min(best, (time.perf_counter() - t0) / inner)
    return 2 * nbytes / best
