"""Stopping cleanly on Ctrl-C (SIGINT) and SIGTERM (and Ctrl-Break, SIGBREAK, on Windows).

Outside training, either signal raises ``Stop`` (a KeyboardInterrupt) at once:
files being written are written atomically, so nothing is left half-written,
and the command exits with 128 + the signal's number (130 for Ctrl-C, 143 for
SIGTERM), the shell's convention for a process ended by a signal.

During training a first signal is only recorded (``Deferred``): the trainer
finishes the chunk of steps it is running (a compiled call cannot be cut
short anyway), saves a checkpoint at that step and stops. A second signal
raises ``Stop`` at once; the trainer then saves the last finished chunk.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import FrameType
from typing import NoReturn

Handler = Callable[[int, FrameType | None], None]  # a signal handler

# SIGINT and SIGTERM exist on every OS (Windows included); SIGBREAK (Ctrl-Break, and a closing
# console window) only on Windows, where it is the nearest thing to SIGTERM/SIGHUP.
STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGBREAK", None)) if s is not None)


class Stop(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; signum says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = int(signum)


def exit_status(signum: int) -> int:
    """128 + the signal's number: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + int(signum)


def describe(signum: int) -> str:
    return "interrupted (Ctrl-C)" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"


@contextmanager
def _handling(handler: Handler) -> Iterator[None]:
    """Install handler for the STOP_SIGNALS while inside; a no-op off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)


def _raise_stop(signum: int, frame: FrameType | None) -> NoReturn:
    raise Stop(signum)


def stop_raises() -> AbstractContextManager[None]:
    """Within: SIGINT and SIGTERM both raise Stop, so SIGTERM ends a command the way Ctrl-C does."""
    return _handling(_raise_stop)


class Deferred:
    """Records the first stop signal instead of raising; calling it says whether one came.

    A second signal raises Stop at once, for a user who does not want to wait
    for the current chunk of steps.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise Stop(signum)
        self.signum = int(signum)

    @contextmanager
    def active(self) -> Iterator[Deferred]:
        with _handling(self._handle):
            yield self
