"""Training progress: one live status line on a terminal, plain lines in logs.

The trainer hands over a record after every chunk of ``log_every`` steps
(step, loss, steps/s, and at evaluations each split's NLL). On a terminal the
record redraws a single line with a carriage return; anywhere else (a CI log,
a file, a pipe), or when the user asked for ``--log-every``, it becomes one
plain line, in the format the README shows.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from ..runs.events import Event, Line, Phase, Step, TrainingBegins, plain_line

if TYPE_CHECKING:
    from ..training.trainer import Record


def duration(seconds: float) -> str:
    """Seconds as ``42 s``, ``3:07`` (m:ss) or ``1:02:03`` (h:mm:ss); ``?`` when unknown (not finite)."""
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Silent:
    """--quiet: nothing. Every reporter is a context manager that closes itself."""

    def record(self, record: Record) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PlainLines(Silent):
    """One line per record on ``stream`` (stdout), flushed at once so logs stay live."""

    def __init__(self, total_steps: int, stream: TextIO) -> None:
        self.total_steps, self.stream = total_steps, stream

    def record(self, record: Record) -> None:
        print(plain_line(record, self.total_steps), file=self.stream, flush=True)


class LiveLine(Silent):
    """A status line redrawn in place with ``\\r``: step, loss, dev NLL @ the step of the last eval, speed, time left.

    Speed and time left are measured on the wall clock from the end of the
    first chunk on, so they include evaluations and checkpoints and leave out
    the one-off compilation. ``close`` ends the line, leaving the last state on
    screen (with the total time when the run got to its last step).
    """

    BAR = 20
    WIDE = 110  # columns: room for the bar and the longest line

    def __init__(
        self,
        total_steps: int,
        stream: TextIO,
        start_step: int = 0,
        clock: Callable[[], float] = time.perf_counter,
        width: int | None = None,
    ) -> None:
        self.total_steps, self.stream, self.clock = total_steps, stream, clock
        self.width = width if width is not None else shutil.get_terminal_size().columns
        self.started = clock()
        self.first: tuple[float, float] | None = None  # (step, time) after the first chunk
        self.step: float = start_step  # of the last record
        self.dev: float | None = None  # the last dev NLL, and its step
        self.dev_step: float | None = None
        self.shown = 0  # characters on the line now
        self.closed = False
        self._draw(f"step {start_step:,}/{total_steps:,}  compiling...")

    def _draw(self, text: str) -> None:
        text = text[: max(self.width - 1, 10)]  # a wrapped line could not be redrawn
        self.stream.write("\r" + text + " " * max(self.shown - len(text), 0))
        self.stream.flush()
        self.shown = len(text)

    def record(self, record: Record) -> None:
        now = self.clock()
        self.step = record["step"]
        if "dev_nll" in record:
            self.dev, self.dev_step = record["dev_nll"], self.step
        if self.first is None:
            self.first = (self.step, now)
            rate = record["steps_per_s"]
        else:
            done, took = self.step - self.first[0], now - self.first[1]
            rate = done / took if took > 0 else record["steps_per_s"]
        left = (self.total_steps - self.step) / rate if rate > 0 else float("inf")
        dev = f"  dev {self.dev:.4f} @{self.dev_step:,}" if self.dev is not None else ""
        when = f"{duration(now - self.started)} total" if self.step >= self.total_steps else f"{duration(left)} left"
        text = (
            f"step {self.step:>{len(f'{self.total_steps:,}')},}/{self.total_steps:,}  loss {record['loss']:.4f}{dev}  "
            f"{rate:,.0f} steps/s  {when}"
        )
        if self.width >= self.WIDE:  # a bar only on a wide terminal, decided once so the line does not jump
            filled = round(self.BAR * self.step / self.total_steps) if self.total_steps else self.BAR
            text = f"[{'#' * filled}{'.' * (self.BAR - filled)}] {text}"
        self._draw(text)

    def close(self) -> None:
        if not self.closed:  # before any message that follows, error or not
            self.closed = True
            self.stream.write("\n")
            self.stream.flush()


def reporter(
    total_steps: int,
    *,
    quiet: bool = False,
    plain: bool = False,
    start_step: int = 0,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> Silent:
    """What training progress looks like here: Silent, PlainLines on ``out`` or a LiveLine on ``err``.

    Live only when both streams are a terminal (stdout and stderr by default)
    and plain lines were not asked for: with stdout redirected to a file the
    file gets the plain lines, as before.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    if quiet:
        return Silent()
    if not plain and _is_terminal(out) and _is_terminal(err):
        return LiveLine(total_steps, err, start_step)
    return PlainLines(total_steps, out)


class Status:
    """A note of a long phase (reading, scoring) on a terminal's stderr, redrawn while it runs, wiped after.

    Nowhere else: logs, pipes and tests get no such lines.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        stream = sys.stderr if stream is None else stream
        self.stream = stream if _is_terminal(stream) else None
        self.shown = 0

    def show(self, text: str) -> None:
        if self.stream is not None:
            self.stream.write("\r" + text + " " * max(self.shown - len(text), 0))
            self.stream.flush()
            self.shown = len(text)

    def wipe(self) -> None:
        """Take the note off the terminal."""
        if self.shown and self.stream is not None:  # shown: something was drawn on the stream
            self.stream.write("\r" + " " * self.shown + "\r")
            self.stream.flush()
            self.shown = 0

    @contextmanager
    def phase(self, label: str) -> Iterator[Callable[..., None]]:
        """Show ``label ...`` until the block ends; the block gets ``update(done, total, what="")`` for a
        percentage (of what, e.g. which split)."""
        self.show(f"{label} ...")
        try:
            yield lambda done, total, what="": self.show(
                f"{label} {what}{' ' if what else ''}{100 * done // max(total, 1)}%"
            )
        finally:
            self.wipe()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class EventPrinter:
    """How the command line shows a run's events: lines printed, long phases as a note on a terminal's
    stderr, training records as a live line there or plain lines (quiet: no records; plain: plain lines even
    on a terminal). A context manager: leaving it closes the live line."""

    def __init__(self, quiet: bool = False, plain: bool = False) -> None:
        self.quiet, self.plain = quiet, plain
        self.status = Status()
        self.report: Silent = Silent()

    def __call__(self, event: Event) -> None:
        if isinstance(event, Line):
            print(event.text, flush=True)
        elif isinstance(event, Phase):
            if event.over:
                self.status.wipe()
            else:
                self.status.show(str(event))
        elif isinstance(event, TrainingBegins):
            self.report.close()
            self.report = reporter(event.total_steps, quiet=self.quiet, plain=self.plain, start_step=event.start_step)
        elif isinstance(event, Step):
            self.report.record(event.record)

    def __enter__(self) -> EventPrinter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.status.wipe()
        self.report.close()
