"""What a task gets to work with: the size mode and the two frameworks' devices."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

TORCH_PIN = "torch==2.13.0"


class BenchmarkError(Exception):
    """A setup problem (missing PyTorch, no GPU) reported as one clear line."""


def require_torch():
    """Import torch, or fail with how to install the pinned CPU build."""
    try:
        import torch
    except ImportError:
        raise BenchmarkError(
            f"the benchmarks compare against PyTorch, which is not installed: "
            f"pip install {TORCH_PIN}  (or pip install -e '.[bench]')"
        ) from None
    return torch


@dataclass
class Context:
    """quick: tiny sizes, to check the code runs; device: 'cpu' or 'gpu' for both frameworks."""

    quick: bool
    device: str
    jax_device: Any
    torch_device: Any
    log: Callable[[str], None] = print

    @classmethod
    def create(cls, quick: bool, device: str, log: Callable[[str], None] = print) -> Context:
        import jax

        torch = require_torch()
        if device == "cpu":
            return cls(quick, device, jax.devices("cpu")[0], torch.device("cpu"), log)
        try:
            jax_device = jax.devices("gpu")[0]
        except RuntimeError:
            raise BenchmarkError("--device gpu: JAX sees no GPU (install a CUDA build of jaxlib)") from None
        if not torch.cuda.is_available():
            raise BenchmarkError("--device gpu: PyTorch sees no GPU (this torch build has no CUDA)")
        return cls(quick, device, jax_device, torch.device("cuda"), log)

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def to_jax(self, x: np.ndarray):
        import jax

        return jax.device_put(np.asarray(x), self.jax_device)

    def to_torch(self, x: np.ndarray):
        import torch

        return torch.from_numpy(np.array(x)).to(self.torch_device)

    def torch_synced(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """fn, then wait for the GPU, so that a timing covers the work and not just its launch."""

        def run():
            out = fn()
            self.torch_sync()
            return out

        return run

    def torch_sync(self) -> None:
        """Wait for queued GPU work; a no-op on the CPU, where torch calls return when done."""
        if self.torch_device.type == "cuda":
            import torch

            torch.cuda.synchronize()
