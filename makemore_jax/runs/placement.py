"""Where a run computes: JAX's default device, one device of a kind, several (data-parallel), several hosts."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from ..errors import MakemoreError
from ..training import parallel as distributed
from ..training.parallel import DataParallel


@dataclass(frozen=True)
class Placement:
    """devices: how many of this process's devices to train on (None: all; 1: the one-device program);
    platform: their kind (None: JAX's default backend); shard_params: each weight matrix split over the
    devices; coordinator, num_processes, process_id: a multi-host run (all three, or none)."""

    devices: int | None = None
    platform: str | None = None
    shard_params: bool = False
    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None

    def open(self) -> DataParallel | None:
        """Join the multi-host run if asked, choose the devices; None for one device (the plain program).

        Before any JAX computation: joining must come first.
        """
        multi = (self.coordinator, self.num_processes, self.process_id)
        if any(v is not None for v in multi):
            if self.coordinator is None or self.num_processes is None or self.process_id is None:
                raise MakemoreError("coordinator, num_processes and process_id go together (a multi-host run)")
            distributed.initialize(self.coordinator, self.num_processes, self.process_id)
        devices = distributed.select_devices(self.platform, self.devices)
        if self.platform is not None:  # everything outside the training steps (evaluation, sampling) runs there too
            jax.config.update("jax_default_device", next(d for d in devices if d.process_index == jax.process_index()))
        if len(devices) == 1:
            return None
        return distributed.DataParallel.over(devices, self.shard_params)


def use_device(platform: str | None) -> None:
    """Make the first device of this kind JAX's default (MakemoreError if there is none)."""
    if platform is not None:
        jax.config.update("jax_default_device", distributed.select_devices(platform, 1)[0])


def describe(parallel: DataParallel | None) -> str:
    """Where a run computes, e.g. ``device: gpu (NVIDIA H200)`` or ``devices: 4 × cpu, data-parallel``."""
    if parallel is None:
        (device,) = jnp.zeros(()).devices()  # where an uncommitted array lands: the default device
        kind = f" ({device.device_kind})" if device.device_kind != device.platform else ""
        return f"device: {device.platform}{kind}"
    devices = list(parallel.mesh.devices.flat)
    kinds = sorted({d.device_kind for d in devices} - {devices[0].platform})
    kind = f" ({', '.join(kinds)})" if kinds else ""
    hosts = len({d.process_index for d in devices})
    where = f" on {hosts} hosts" if hosts > 1 else ""
    return f"devices: {len(devices)} × {devices[0].platform}{kind}{where}, data-parallel"


def is_writer() -> bool:
    """Process 0 of a multi-host run, or the only one: it writes the work directory and prints."""
    return jax.process_index() == 0


def process_index() -> int:
    return jax.process_index()
