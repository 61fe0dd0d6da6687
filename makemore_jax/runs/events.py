"""What a run tells whoever watches: plain lines, long phases, training records.

Each event prints as the line a log would hold (``str(event)``), so
``progress=print`` is a plain log; the command line draws them its own way
(a live line on a terminal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Record = dict[str, float]  # training.trainer's: step, loss, steps_per_s, compile_s, <split>_nll, <split>_ppl


@dataclass(frozen=True)
class Line:
    """A line of the run's story: the data it read, where it computes, what it saved."""

    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Phase:
    """A long phase (reading, counting, initialising, scoring): begun (done None), going (done of total), over."""

    label: str
    done: int | None = None
    total: int | None = None
    what: str = ""  # e.g. the split being scored
    over: bool = False

    def __str__(self) -> str:
        if self.over:
            return f"{self.label}: done"
        if self.done is None or not self.total:
            return f"{self.label} ..."
        return f"{self.label} {self.what}{' ' if self.what else ''}{100 * self.done // max(self.total, 1)}%"


@dataclass(frozen=True)
class TrainingBegins:
    """Steps from start_step to total_steps are about to run."""

    total_steps: int
    start_step: int

    def __str__(self) -> str:
        return f"training: steps {self.start_step:,} to {self.total_steps:,}"


@dataclass(frozen=True)
class Step:
    """The record of a chunk of steps: step, loss, steps_per_s, compile_s, and at evaluations each split's NLL."""

    record: Record
    total_steps: int

    def __str__(self) -> str:
        return plain_line(self.record, self.total_steps)


def plain_line(record: Record, total_steps: int) -> str:
    """``step     50/500  loss 2.6614  train 2.5006  dev 2.4944 (ppl 12.11)  (58,602 steps/s, compiled in 0.30 s)``."""
    nll = "".join(f"  {s} {record[f'{s}_nll']:.4f}" for s in ("train", "dev") if f"{s}_nll" in record)
    if record.get("dev_ppl") is not None:  # the trainer records it beside the dev NLL
        nll += f" (ppl {record['dev_ppl']:.2f})"
    note = f", compiled in {record['compile_s']:.2f} s" if "compile_s" in record else ""
    return (
        f"step {record['step']:>7,}/{total_steps:,}  loss {record['loss']:.4f}{nll}"
        f"  ({record['steps_per_s']:,.0f} steps/s{note})"
    )


Event = Line | Phase | TrainingBegins | Step
Watch = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The watcher of a run nobody watches."""
