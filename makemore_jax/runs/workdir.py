"""A work directory holds one run.

A run holds the directory's lock from before its first write to its end. The
first save of a new run replaces the run the directory held, whole: the old
commit points go first (mixture.json, last.json, model.json), then its
metrics, array files and member directories, then the new run's files are
written (metrics.jsonl, model.json, last.json, in that order: a kill between
them leaves metrics for every step of the newest checkpoint). So nothing of an
old run is left to load or resume beside a new one; a run that ends before its
first save (a refused setting, an input that cannot be read, a loss that is
not finite in its first chunk) leaves the directory as it was. A resumed run
is the run the directory holds: its saves replace only its own files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from ..errors import MakemoreError
from ..models import mixture
from ..store import checkpoint, lock
from ..store.checkpoint import Snapshot
from ..training.trainer import Record


def check_path(path: str) -> None:
    """A work directory path that is a file is refused before any work."""
    if os.path.lexists(path) and not os.path.isdir(path):
        raise MakemoreError(f"{path}: exists and is not a directory")


class WorkDir:
    """A work directory while a run holds it. resumed: the run it holds goes on (nothing to replace)."""

    def __init__(self, path: str, resumed: bool = False) -> None:
        self.path = path
        self.claimed = resumed  # whether this run's files are the directory's run already

    @classmethod
    @contextmanager
    def held(cls, path: str, resumed: bool = False) -> Iterator[WorkDir]:
        """Lock the directory (creating it), drop a killed run's temporary files, check it can be written;
        on leaving, unlock it (a directory this created and left empty, because the run failed, is removed)."""
        check_path(path)
        lock.hold(path)
        failed = True
        try:
            checkpoint.prepare_workdir(path)
            yield cls(path, resumed)
            failed = False
        finally:
            lock.release(path, remove_created_if_empty=failed)

    def save(
        self, history: Sequence[Record] | None = None, best: Snapshot | None = None, last: Snapshot | None = None
    ) -> None:
        """Write the run's metrics, its best model and its latest state (each if given), in that order.

        The first save of a new run is staged and put in place of the run the directory held, whole; a
        write that fails leaves that run as it was.
        """
        staged = None if self.claimed else checkpoint.Staged()
        try:
            if history is not None:
                checkpoint.write_metrics(self.path, list(history), staged)
            for name, snap in (("model", best), ("last", last)):
                if snap is not None:
                    checkpoint.save(
                        self.path,
                        name,
                        snap.fitted,
                        step=snap.step,
                        best_dev=snap.best_dev,
                        training=snap.training,
                        metrics=snap.metrics,
                        opt_state=snap.opt_state if name == "last" else None,
                        staged=staged,
                    )
        except BaseException:
            if staged is not None:
                staged.discard()
            raise
        self._commit(staged)

    def save_mixture(
        self,
        mix: mixture.Mixture,
        members: Sequence[checkpoint.Loaded],
        sources: Sequence[str],
        report: Mapping[str, object],
    ) -> None:
        staged = None if self.claimed else checkpoint.Staged()
        try:
            checkpoint.save_mixture(self.path, mix, members, sources, report, staged)
        except BaseException:
            if staged is not None:
                staged.discard()
            raise
        self._commit(staged)

    def _commit(self, staged: checkpoint.Staged | None) -> None:
        if staged is not None:
            checkpoint.replace_run(self.path, staged)
            self.claimed = True
