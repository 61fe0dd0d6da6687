"""Each process of a multi-host run reads and parses only its own part of the word list.

The file is cut into P byte ranges of about equal size, each moved forward to
the start of a line, so every line falls in exactly one part. A process parses
its part alone, into arrays (``words.parse_word_array``); what the others need of it is small and goes round once
(``process_allgather``): how many words it holds, its characters, its longest
word. From those every process knows the vocabulary, the word count n and
where its words sit in the file, so it can draw the seeded split exactly as a
one-process run does (``seeding.permutation(key, n)`` is n integers, not n
strings) and gather the words of each split that it holds.

The training rows then stay on the process that parsed them: each process
puts its training words on its own devices (a "held" table, process p's rows
at p·m … p·m + m − 1), and a replicated index ``row_of`` maps training row r,
in the order a one-device run draws from, to its place in that table. A batch
drawn as on one device is gathered through it, so training sees the very same
batches. Evaluation sums each process's NLL and positions and adds the sums
over the processes.

With one process none of this runs: the CLI reads the whole file as before.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

import jax
import numpy as np
import numpy.typing as npt
from jax.experimental import multihost_utils

from ..errors import MakemoreError
from ..seeding import permutation
from .words import SPLITS, Dataset, Vocabulary, WordArray, parse_word_array, reading, split_sizes

BLOCK = 1 << 16  # bytes read at a time looking for a line's start


def part_bounds(size: int, index: int, count: int) -> tuple[int, int]:
    """Part index of count of a file of size bytes, before the cuts move to line starts."""
    return index * size // count, (index + 1) * size // count


def _line_start(f: BinaryIO, pos: int, size: int) -> int:
    """The first position >= pos that starts a line (just after a \\n), or size."""
    if pos <= 0:
        return 0
    if pos >= size:
        return size
    f.seek(pos - 1)
    at = pos - 1
    while True:
        block = f.read(BLOCK)
        if not block:
            return size
        newline = block.find(b"\n")
        if newline >= 0:
            return at + newline + 1
        at += len(block)


def read_part(path: str, index: int, count: int) -> tuple[bytes, int, int]:
    """(the bytes of part index of count, where it starts, where it ends): whole lines only.

    The cut after part i is the cut before part i + 1, so the parts cover the
    file once. A file with no \\n at all is one part (process 0's).
    """
    with reading(path) as f:
        size = os.fstat(f.fileno()).st_size
        lo, hi = part_bounds(size, index, count)
        start, end = _line_start(f, lo, size), _line_start(f, hi, size)
        f.seek(start)
        return f.read(end - start), start, end


def file_sha256(path: str) -> str:
    """SHA-256 of a file's bytes, read a block at a time (memory stays flat)."""
    h = hashlib.sha256()
    with reading(path) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---- what goes round the processes --------------------------------------------------------


def allgather(x: np.ndarray | np.generic) -> np.ndarray:
    """x of every process stacked along a new first axis (the same shape on each: a collective)."""
    return np.asarray(multihost_utils.process_allgather(np.asarray(x)))


def allgather_ragged(x: np.ndarray, fill: float = 0) -> list[np.ndarray]:
    """Every process's x (first axes may differ; the rest must agree), as a list by process."""
    x = np.asarray(x)
    lengths = allgather(np.int64(len(x)))
    longest = int(lengths.max())
    padded = np.concatenate([x, np.full((longest - len(x), *x.shape[1:]), fill, x.dtype)])
    return [part[:n] for part, n in zip(allgather(padded), lengths)]


def sum_over_processes(x: npt.ArrayLike) -> np.ndarray:
    """x added over the processes, in process order (every process gets the same bits)."""
    stacked = allgather(np.asarray(x))
    total = stacked[0].copy()
    for part in stacked[1:]:
        total += part
    return total


def agree(error: MakemoreError | None, what: str) -> None:
    """Raise error here, or a MakemoreError naming the first process that had one there (a collective)."""
    failed = allgather(np.int32(error is not None))
    if error is not None:
        raise error
    if failed.any():
        raise MakemoreError(f"process {int(np.argmax(failed))} could not {what} (its error says why)")


# ---- the dataset of one process ---------------------------------------------------------


@dataclass
class SlicedDataset(Dataset):
    """The split words this process parsed, with what every process agrees on.

    words[split] are this process's words of the split, in split order (WordArrays);
    rows[split] their rows in the whole split. sizes, max_word_len and vocab
    are those of the whole list. row_of (n_train,) int32 is, for each training
    row, its row in the held table (process p's training words at
    p·held_per_process + 0, 1, ...).
    """

    totals: dict[str, int] = field(default_factory=dict)
    rows: dict[str, np.ndarray] = field(default_factory=dict)
    longest: int = 0
    row_of: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))
    held_per_process: int = 0
    parsed: tuple[int, int, int] = (0, 0, 0)  # (words, first byte, end byte) of this process's part

    local_only = True

    @property
    def sizes(self) -> dict[str, int]:
        return dict(self.totals)

    @property
    def max_word_len(self) -> int:
        return self.longest

    def combine(self, x: np.ndarray) -> np.ndarray:
        return sum_over_processes(x)


def build(path: str, key: jax.Array, fractions: Sequence[float], devices_per_process: int) -> SlicedDataset:
    """Read and parse this process's part of path; agree with the others on the rest (collectives).

    Gives the same split as ``Dataset.build(read_words(path), key, fractions)``
    on one process: the same words in each split, in the same order, only
    each held by the process that parsed it.
    """
    index, count = jax.process_index(), jax.process_count()
    words, start, end = _parse_own_part(path, index, count)

    counts = allgather(np.int64(len(words)))
    n = int(counts.sum())
    if n == 0:
        raise MakemoreError(f"{path}: no words (the file is empty or holds only blank lines)")
    everyone = np.unique(np.concatenate(allgather_ragged(words.vocab.code_points())))
    vocab = Vocabulary(tuple(chr(int(c)) for c in everyone))
    words = words.in_vocabulary(vocab)
    longest = int(allgather(np.int64(words.lengths().max(initial=0))).max())

    # the split of a one-process run: shuffled position of every word of the file
    n_train, n_dev, _ = split_sizes(n, fractions)
    order = permutation(key, n)  # shuffled position -> file index, as Dataset.build draws it
    first = np.concatenate([[0], np.cumsum(counts)])  # file index of each process's first word
    position = np.empty(n, order.dtype)
    position[order] = np.arange(n)
    mine = position[first[index] : first[index + 1]]  # shuffled position of each of my words
    starts = {"train": 0, "dev": n_train, "test": n_train + n_dev}
    stops = {"train": n_train, "dev": n_train + n_dev, "test": n}
    by_split: dict[str, Sequence[str]] = {}
    rows: dict[str, np.ndarray] = {}
    for split in SPLITS:
        take = np.flatnonzero((mine >= starts[split]) & (mine < stops[split]))
        take = take[np.argsort(mine[take], kind="stable")]
        by_split[split] = words.take(take)
        rows[split] = (mine[take] - starts[split]).astype(np.int64)

    row_of, held = _held_rows(order[:n_train], first, count, devices_per_process)

    data = SlicedDataset(
        vocab,
        by_split,
        totals={"train": n_train, "dev": n_dev, "test": n - n_train - n_dev},
        rows=rows,
        longest=longest,
        row_of=row_of,
        held_per_process=held,
        parsed=(len(words), start, end),
    )
    return data


def _parse_own_part(path: str, index: int, count: int) -> tuple[WordArray, int, int]:
    """(words, first byte, end byte) of part index of count of path, read and parsed by this process alone.

    Every process learns whether every other could read its part (a
    collective): a process's own error is raised as it is, the others name
    the first process that failed.
    """
    error, words, start, end = None, WordArray.empty(Vocabulary(())), 0, 0
    try:
        raw, start, end = read_part(path, index, count)
        source = f"{path} (part {index + 1} of {count}, from byte {start:,})" if start else path
        words = parse_word_array(raw, source=source, allow_empty=True, byte_order_mark=start == 0)
        del raw
    except MakemoreError as err:
        error = err
    agree(error, f"read its part of {path}")
    return words, start, end


def _held_rows(
    train_files: np.ndarray, first: np.ndarray, count: int, devices_per_process: int
) -> tuple[np.ndarray, int]:
    """(row_of, held_per_process): where each training row lives, its owner's block of the held table, in row order.

    train_files (n_train,): the file index of each training row; first
    (count + 1,): the file index of each process's first word (and n). Each
    process holds the same number of rows, its most, rounded up to a multiple
    of devices_per_process (at least one per device).
    """
    n_train = len(train_files)
    owner = np.searchsorted(first, train_files, side="right") - 1
    per_owner = np.bincount(owner, minlength=count)
    held = -(-int(per_owner.max(initial=0)) // devices_per_process) * devices_per_process
    held = max(held, devices_per_process)
    by_owner = np.argsort(owner, kind="stable")
    rank = np.empty(n_train, np.int64)
    rank[by_owner] = np.arange(n_train) - np.concatenate([[0], np.cumsum(per_owner)])[owner[by_owner]]
    row_of = (owner * held + rank).astype(np.int32)
    return row_of, held
