"""TensorBoard curves of a training run, beside its metrics.jsonl, with makemore.py's tags.

``Loss/train`` and ``Loss/test`` (makemore.py's names), ``Loss/dev``, at the
evaluations, and ``learning_rate`` at every logged chunk. The events are
written through the tensorboard package's own writer (an optional extra: the
writer the reader was made with, kept by the TensorBoard project, no third
copy of the record format), when the run saves its metrics: they never run
ahead of the run's last checkpoint, so a resumed run continues the same curves
from that step, with no step twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..errors import MakemoreError
from ..training.config import TrainConfig
from ..training.steps import learning_rate
from .events import Record

TAGS = {"train_nll": "Loss/train", "dev_nll": "Loss/dev", "test_nll": "Loss/test"}
INSTALL = "pip install 'makemore-jax[tensorboard]'"


def check_available() -> None:
    """MakemoreError saying how to install the writer, before any work, where the package is missing."""
    try:
        import tensorboard.summary.writer.event_file_writer  # noqa: F401
    except ImportError:
        raise MakemoreError(f"tensorboard: the tensorboard package is not installed ({INSTALL})") from None


class Curves:
    """The event file of one run in its work directory; records are added up to the step last saved."""

    def __init__(self, workdir: str, cfg: TrainConfig, written_up_to: int = 0) -> None:
        self.workdir, self.cfg, self.done = workdir, cfg, written_up_to
        self.lr = learning_rate(cfg)
        self.writer: Any = None

    def add(self, history: Sequence[Record]) -> None:
        """Write the records of history after the last one written (called when the run saves)."""
        new = [r for r in history if r["step"] > self.done]
        if not new:
            return
        if self.writer is None:
            from tensorboard.summary.writer.event_file_writer import EventFileWriter

            self.writer = EventFileWriter(self.workdir)
        for record in new:
            step = int(record["step"])
            for key, tag in TAGS.items():
                if record.get(key) is not None:
                    self._scalar(tag, float(record[key]), step)
            self._scalar("learning_rate", self._lr(step), step)
        self.writer.flush()
        self.done = int(new[-1]["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def _lr(self, step: int) -> float:
        """The learning rate of the step's own update (optax counts updates from 0)."""
        return float(self.lr(step - 1)) if callable(self.lr) else float(self.lr)

    def _scalar(self, tag: str, value: float, step: int) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2

        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
        self.writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))
