"""Counting the n-grams of a word list of any size within a memory budget, spilling to disk (as KenLM's ``lmplz -S``).

The words are turned into keys a piece at a time (``stream_keys``: the same
flat index ``ngram_keys`` gives, int32 while V^N fits it, else int64); each
piece is sorted and run-length counted into a *run*, its distinct keys in
increasing (suffix) order with their counts. Runs stay in memory while they
fit the budget; beyond it they are merged, and what is still too large is
written to a temporary directory as raw arrays (``tofile``, no pickle). A
k-way merge then reads every run a block at a time: the keys up to the
smallest of the blocks' last keys are final (no run holds a smaller one
further on), so they are summed and kept, and the rest of each block waits
for the next round. The result is exactly the ``NgramCounts`` of counting all
the rows at once; every order and the Kneser–Ney statistics follow from it as
before (``all_levels``).

The budget (``memory_bytes``: ``512M``, ``2G``, ``80%`` of physical memory, a
number of bytes; a quarter of physical memory by default) bounds what counting
holds besides the words themselves and its result: a quarter for the piece
being keyed, a quarter for the runs in memory, and the merges' working space.
The temporary directory is removed however counting ends (an error, Ctrl-C,
SIGTERM turned into an exception by the CLI); a full disk is one MakemoreError.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

import jax.numpy as jnp
import numpy as np
import numpy.typing as npt

from ...data.words import BOUNDARY_ID, Vocabulary, word_lengths
from ...errors import MakemoreError
from .counting import (
    INT32_LIMIT,
    MAX_NGRAM_CELLS,
    NgramCounts,
    _digits,
    _pad_repeating,
    check_order,
    choose_representation,
    count_ngram_rows,
    count_weighted_rows,
    counts_from_table,
    dense_counts,
    key_dtype,
    run_starts,
    shape_bucket,
    word_pieces,
    words_to_ngrams,
)

MIN_MEMORY = 2**20  # the least budget a user may give (--memory): below it blocks get too small to be worth reading
FALLBACK_MEMORY = 2**30  # the default budget where the physical memory is unknown
POSITION_BYTES = 48  # a piece's keys and the temporaries of encoding and keying them, per position
PIECE_MAX_POSITIONS = 2**22  # positions keyed at once at most: larger pieces sort no faster
MIN_BLOCK = 256  # entries of a run read at once at least, whatever the budget
ROWS_BYTES_PER_ID = (
    32  # counting in memory: an int32 id of the rows, its padded copy, its suffix ranks, and the sums' temporaries
)
UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
SIZE = re.compile(r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>%|[KMGT](?:i?B)?|B)?", re.IGNORECASE)

Progress = Callable[[str], None]


# ---- the budget ---------------------------------------------------------------------------


def physical_memory() -> int | None:
    """The machine's physical memory in bytes, None where the OS does not say."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows), or no such name
        return None
    return pages * size if pages > 0 and size > 0 else None


def default_memory() -> int:
    """A quarter of physical memory (KenLM's lmplz defaults to 80%, but here the words and the model share it)."""
    total = physical_memory()
    return max(total // 4, MIN_MEMORY) if total else FALLBACK_MEMORY


def memory_bytes(spec: str | int) -> int:
    """A budget in bytes from ``512M``, ``2G`` (K, M, G, T: powers of 1024, a B or iB after them optional),
    ``80%`` (of physical memory) or a number of bytes; "" (and the integer 0, Python's "not given") is
    default_memory().

    MakemoreError, one line, for anything else or less than MIN_MEMORY: the
    text "0" (``--memory 0``) is a size of 0 bytes, refused like any other below 1M.
    """
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        if spec == 0:
            return default_memory()
        spec = str(int(spec))
    if not isinstance(spec, str):
        raise MakemoreError(f"memory must be a size such as 512M, 2G or 80%, got {spec!r}")
    text = spec.strip()
    if text == "":
        return default_memory()
    size = SIZE.fullmatch(text)
    if size is None:
        raise MakemoreError(f"memory must be a size such as 512M, 2G, 80% or a number of bytes, got {spec!r}")
    value, unit = float(size["number"]), (size["unit"] or "").upper()
    if unit == "%":
        total = physical_memory()
        if total is None:
            raise MakemoreError(f"memory {text}: this machine's physical memory is unknown; give a size such as 2G")
        if not 0 < value <= 100:
            raise MakemoreError(f"memory {text}: a share of physical memory must be in (0, 100]%")
        budget = int(total * value / 100)
    else:
        budget = int(value * UNITS[unit[:1] if unit != "B" else ""])
    if budget < MIN_MEMORY:
        raise MakemoreError(
            f"memory {text} is too small: counting needs at least 1M (leave it out for the default, "
            f"a quarter of physical memory)"
        )
    return budget


def check_in_memory_count(positions: int, vocab_size: int, order: int, memory: int) -> None:
    """MakemoreError, one line, unless order-`order` n-grams of `positions` positions fit in memory.

    That is, unless they can be counted within `memory` bytes.

    Orders whose keys fit int64 are counted in pieces and spill to disk past
    the budget, so any budget holds them; beyond int64 the n-gram rows are
    counted in memory, about ROWS_BYTES_PER_ID bytes per id (the rows, their
    suffix ranks and the sums' temporaries). Python integers only: no V^order.
    """
    if key_dtype(vocab_size, order) is not None:
        return
    need = positions * order * ROWS_BYTES_PER_ID
    if need <= memory:
        return
    spillable = 1  # the largest order whose keys fit int64 (vocab_size >= 2 here: V^order overflowed)
    while key_dtype(vocab_size, spillable + 1) is not None:
        spillable += 1
    fits = max(memory // (positions * ROWS_BYTES_PER_ID), spillable)
    raise MakemoreError(
        f"order {order:,} is too large to count: its n-grams over {vocab_size} ids have keys beyond int64, so they are "
        f"counted in memory, not spilled to disk: about {_mib(need)} for {positions:,} positions, more than "
        f"the counting budget (--memory) of {_mib(memory)}; at most order {fits:,} fits"
    )


def _mib(n: int) -> str:
    """Bytes in MiB, or GiB from 10 GiB on: '1 MiB', '7,340 MiB', '12.5 GiB'."""
    return f"{n / 2**30:,.1f} GiB" if n >= 10 * 2**30 else f"{n / 2**20:,.0f} MiB"


@dataclass(frozen=True)
class Budget:
    """How counting splits `memory` bytes: pieces of words to key, runs held in memory, blocks read per run."""

    memory: int
    key_bytes: int

    @property
    def entry_bytes(self) -> int:
        return self.key_bytes + 4  # a key and its int32 count

    @property
    def piece_positions(self) -> int:
        return int(min(max(self.memory // 4 // POSITION_BYTES, 1), PIECE_MAX_POSITIONS))

    @property
    def run_entries(self) -> int:
        """Entries the runs in memory may hold before they are merged (a merge needs about three times their space)."""
        return max(self.memory // 4 // self.entry_bytes, 1)

    def block_entries(self, runs: int) -> int:
        return max(self.memory // 4 // (max(runs, 1) * self.entry_bytes), MIN_BLOCK)


# ---- keys of a piece of words ------------------------------------------------------------------


def stream_keys(stream_S: np.ndarray, order: int, vocab_size: int, dtype: npt.DTypeLike) -> np.ndarray:
    """The key (``ngram_keys``) of the n-gram predicting each position 1.. of an encoded stream (``. w1 . w2 .``).

    The same as ``ngram_keys(ngram_windows(stream_S, order), V)`` without the
    (S − 1, order) rows: Horner's rule over the ids back from each position,
    an id counting only while it is inside the word (further back, and at the
    opening boundary itself, the id is the boundary 0). Returns dtype (S − 1,).
    """
    S = len(stream_S)
    pos_S = np.arange(S, dtype=np.int64 if S > INT32_LIMIT else np.int32)
    opened_S = np.maximum.accumulate(np.where(stream_S == BOUNDARY_ID, pos_S, 0))
    depth_P: np.ndarray = pos_S[1:] - opened_S[:-1]  # how far back the word's opening boundary is
    del pos_S, opened_S
    padded = np.concatenate([np.zeros((order - 1,), np.int32), np.asarray(stream_S, np.int32)])
    keys_P = np.zeros((S - 1,), dtype)
    for back in range(order):  # the predicted id first: the most significant
        ids_P = padded[order - back : order - back + S - 1]
        keys_P *= vocab_size
        keys_P += np.where(depth_P > back, ids_P, 0) if back else ids_P
    return keys_P


def piece_run(
    words: Sequence[str], vocab: Vocabulary, order: int, dtype: npt.DTypeLike
) -> tuple[np.ndarray, np.ndarray]:
    """The run of a piece of words: its distinct keys sorted, and how often each occurs (int32)."""
    keys = stream_keys(vocab.encode_stream(words), order, vocab.size, dtype)
    keys.sort()
    first = run_starts(keys)
    return keys[first], np.diff(first, append=len(keys)).astype(np.int32)


def merge_runs(runs: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """One run of several: the distinct keys of all of them sorted, each key's counts summed.

    A run's keys are distinct, so each run adds its counts to the merged
    positions of its keys without collisions. MakemoreError if a count passes int32.
    """
    runs = [r for r in runs if len(r[0])]
    if len(runs) <= 1:
        return runs[0] if runs else (np.zeros((0,), np.int32), np.zeros((0,), np.int32))
    keys = np.concatenate([k for k, _ in runs])
    keys.sort()
    keys = keys[run_starts(keys)]
    totals = np.zeros((len(keys),), np.int64)
    for k, c in runs:
        totals[np.searchsorted(keys, k)] += c
    if totals.max() > INT32_LIMIT:
        raise MakemoreError(f"an n-gram occurs more than {INT32_LIMIT:,} times: its count does not fit int32")
    return keys, totals.astype(np.int32)


# ---- runs in memory and on disk ------------------------------------------------------------


def write_run(path: str, keys_M: np.ndarray, counts_M: np.ndarray) -> None:
    """A run as one raw file: its keys, then its int32 counts."""
    with open(path, "wb") as f:
        keys_M.tofile(f)
        counts_M.tofile(f)


class _FileRun:
    """A run written by write_run, read back a block at a time."""

    def __init__(self, path: str, entries: int, dtype: npt.DTypeLike) -> None:
        self.path, self.entries, self.dtype, self.read_so_far = path, entries, np.dtype(dtype), 0

    @property
    def exhausted(self) -> bool:
        return self.read_so_far >= self.entries

    def read(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        n = min(block, self.entries - self.read_so_far)
        with open(self.path, "rb") as f:
            f.seek(self.read_so_far * self.dtype.itemsize)
            keys = np.fromfile(f, self.dtype, n)
            f.seek(self.entries * self.dtype.itemsize + self.read_so_far * 4)
            counts = np.fromfile(f, np.int32, n)
        if len(keys) != n or len(counts) != n:
            raise MakemoreError(f"{self.path}: a temporary file of n-gram counts was cut short")
        self.read_so_far += n
        return keys, counts


class _MemoryRun:
    """A run held in memory, handed over whole."""

    def __init__(self, keys: np.ndarray, counts: np.ndarray) -> None:
        self.run, self.exhausted = (keys, counts), False

    def read(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        self.exhausted = True
        return self.run


class Runs:
    """The runs counted so far: in memory while they fit the budget, then in files of a temporary directory.

    A context manager: the directory (made at the first spill, under `parent`,
    the system's temporary directory by default) is removed on leaving,
    however that happens.
    """

    def __init__(self, budget: Budget, dtype: npt.DTypeLike, parent: str | None = None) -> None:
        self.budget, self.dtype, self.parent = budget, np.dtype(dtype), parent
        self.in_memory: list[tuple[np.ndarray, np.ndarray]] = []
        self.held = 0  # entries in memory
        self.files: list[_FileRun] = []
        self.directory: str | None = None

    def __enter__(self) -> Runs:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    @property
    def spilled_bytes(self) -> int:
        return sum(r.entries for r in self.files) * self.budget.entry_bytes

    def add(self, keys: np.ndarray, counts: np.ndarray) -> None:
        """A sorted run; past the budget the runs in memory are merged, and written out if still too large."""
        self.in_memory.append((keys, counts))
        self.held += len(keys)
        if self.held <= self.budget.run_entries:
            return
        merged = merge_runs(self.in_memory)
        self.in_memory, self.held = [], 0
        if 2 * len(merged[0]) > self.budget.run_entries:
            self.spill(*merged)
        else:
            self.in_memory, self.held = [merged], len(merged[0])

    def spill(self, keys: np.ndarray, counts: np.ndarray) -> None:
        where = self.parent or tempfile.gettempdir()
        try:
            if self.directory is None:
                self.directory = tempfile.mkdtemp(prefix="makemore-ngram-", dir=where)
            path = os.path.join(self.directory, f"run-{len(self.files):05d}.bin")
            write_run(path, keys, counts)
        except OSError as err:
            if err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
                raise MakemoreError(
                    f"no space left in {where} for the n-gram counts' temporary files: give counting more --memory "
                    "(it spills less) or set TMPDIR to a directory on a disk with room"
                ) from None
            raise MakemoreError(
                f"cannot write the n-gram counts' temporary files in {where}: {err.strerror or err}"
            ) from None
        self.files.append(_FileRun(path, len(keys), self.dtype))

    def sources(self) -> list[_FileRun | _MemoryRun]:
        return [*self.files, *(_MemoryRun(k, c) for k, c in self.in_memory)]


def merge_sources(
    sources: Sequence[_FileRun | _MemoryRun], block: int, tick: Callable[[Callable[[], str]], None] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The k-way merge of runs read a block at a time: (keys, counts) of all of them, keys distinct and sorted.

    Each round takes from every block the keys up to the smallest last key of
    the blocks whose run goes on (none: everything left), merges and keeps them,
    and refills a block once it is used up. Every key a run holds further on
    is larger than its block's last, so nothing kept is ever added to again.
    """
    heads = [s.read(block) for s in sources]
    total = sum(s.entries if isinstance(s, _FileRun) else len(s.run[0]) for s in sources)
    kept_keys, kept_counts, taken = [], [], 0
    while True:
        live = [i for i, (k, _) in enumerate(heads) if len(k)]
        if not live:
            break
        going_on = [heads[i][0][-1] for i in live if not sources[i].exhausted]
        bound = min(going_on) if going_on else None
        parts = []
        for i in live:
            keys, counts = heads[i]
            n = len(keys) if bound is None else int(np.searchsorted(keys, bound, side="right"))
            parts.append((keys[:n], counts[:n]))
            taken += n
            heads[i] = (keys[n:], counts[n:])
            if n == len(keys) and not sources[i].exhausted:
                heads[i] = sources[i].read(block)
        keys, counts = merge_runs(parts)
        kept_keys.append(keys)
        kept_counts.append(counts)
        if tick is not None:
            tick(partial(_merging_line, len(sources), taken, total))
    if not kept_keys:
        return np.zeros((0,), np.int64), np.zeros((0,), np.int32)
    return np.concatenate(kept_keys), np.concatenate(kept_counts)


def _merging_line(runs: int, taken: int, total: int) -> str:
    return f"merging {runs} runs of n-gram counts: {100 * taken // max(total, 1)}%"


# ---- counting -----------------------------------------------------------------------------


class Ticker:
    """Hands a phase's progress line to `progress`.

    First once the phase has run `after` seconds, then every `every` seconds at most.
    """

    def __init__(
        self,
        progress: Progress | None,
        after: float = 2.0,
        every: float = 0.5,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.progress, self.after, self.every = progress, after, every
        self.clock = clock or time.monotonic
        self.started: float = self.clock()
        self.last: float | None = None

    def __call__(self, text: Callable[[], str]) -> None:
        if self.progress is None:
            return
        now = self.clock()
        if now - self.started >= self.after and (self.last is None or now - self.last >= self.every):
            self.last = now
            self.progress(text())


def count_words(
    words: Sequence[str],
    vocab: Vocabulary,
    order: int,
    memory: int,
    temp_dir: str | None = None,
    progress: Progress | None = None,
) -> NgramCounts:
    """count_ngrams of the words within `memory` bytes (see the module docstring): the same NgramCounts.

    temp_dir: where the spill directory is made (default: the system's
    temporary directory, TMPDIR). progress(text) gets a short line now and then
    while a phase has taken more than a couple of seconds. A vocabulary whose
    keys overflow int64 is counted in memory, by ranks, as count_ngram_rows does,
    its rows within MAX_NGRAM_CELLS ids or memory / ROWS_BYTES_PER_ID, the larger;
    training holds them to memory itself beforehand (check_in_memory_count).
    """
    check_order(order)
    total = int(word_lengths(words).sum()) + len(words)
    if key_dtype(vocab.size, order) is None:  # rows held at once: the fixed bound, or more where memory allows it
        cells = max(MAX_NGRAM_CELLS, memory // ROWS_BYTES_PER_ID)
        return count_ngram_rows(words_to_ngrams(words, vocab, order, max_cells=cells), vocab.size)
    return count_chunks([words], vocab, order, memory, temp_dir, progress, total)


def count_chunks(
    chunks: Iterable[Sequence[str]],
    vocab: Vocabulary,
    order: int,
    memory: int,
    temp_dir: str | None = None,
    progress: Progress | None = None,
    total: int | None = None,
) -> NgramCounts:
    """count_words of all the words of the chunks (e.g. ``read_word_chunks``), taken one at a time.

    Needs keys that fit int64 (key_dtype). total: the positions of all the
    chunks, if known, for the progress line.
    """
    check_order(order)
    if not (isinstance(memory, (int, np.integer)) and memory >= 1):
        raise MakemoreError(f"memory must be a number of bytes >= 1, got {memory!r}")
    dtype = key_dtype(vocab.size, order)
    if dtype is None:
        raise ValueError(f"order-{order} keys over {vocab.size} ids overflow int64: count the rows (count_ngram_rows)")
    budget = Budget(int(memory), dtype.itemsize)
    with Runs(budget, dtype, temp_dir) as runs:
        tick, done = Ticker(progress), 0
        for chunk in chunks:
            for piece in word_pieces(chunk, budget.piece_positions):
                runs.add(*piece_run(piece, vocab, order, dtype))
                done += int(word_lengths(piece).sum()) + len(piece)
                tick(partial(_counting_line, order, done, total, runs))
        sources = runs.sources()
        keys, counts = merge_sources(sources, budget.block_entries(len(sources)), Ticker(progress))
    return NgramCounts(order, vocab.size, _digits(keys, order, vocab.size), counts)


def _counting_line(order: int, done: int, total: int | None, runs: Runs) -> str:
    spilled = f", {len(runs.files)} runs on disk ({runs.spilled_bytes / 2**20:,.0f} MiB)" if runs.files else ""
    so_far = f"{100 * done // max(total, 1)}% of {total:,}" if total is not None else f"{done:,}"
    return f"counting {order}-grams: {so_far} positions{spilled}"


def count_ngrams_streaming(
    chunks: Iterable[Sequence[str]], vocab: Vocabulary, order: int, representation: str = "auto"
) -> NgramCounts:
    """count_ngrams of all the words of the chunks (e.g. ``read_word_chunks``), one chunk at a time.

    Memory holds the table and one chunk, never the whole list. Dense: a V^N
    table that each chunk's scatter-add goes into. Sparse: each chunk's sorted
    runs, merged within the default memory budget (``count_chunks``);
    where keys overflow int64, the distinct n-grams so far ranked together
    with the chunk's n-grams and summed.
    """
    check_order(order)
    kind = choose_representation(representation, vocab.size, order)
    if kind == "sparse" and key_dtype(vocab.size, order) is not None:
        return count_chunks(chunks, vocab, order, default_memory())
    table = np.zeros((vocab.size**order,), np.int32) if kind == "dense" else None
    so_far = NgramCounts(order, vocab.size, np.zeros((0, order), np.int32), np.zeros((0,), np.int32))
    for chunk in chunks:
        ngrams = words_to_ngrams(chunk, vocab, order)
        if not len(ngrams):
            continue
        ones = np.ones((len(ngrams),), np.int32)
        if kind == "dense":
            weights = np.pad(ones, (0, shape_bucket(len(ngrams)) - len(ngrams)))
            table += np.asarray(dense_counts(jnp.asarray(_pad_repeating(ngrams)), jnp.asarray(weights), vocab.size))
        else:
            rows = np.concatenate([so_far.ngrams, ngrams])
            so_far = count_weighted_rows(rows, np.concatenate([so_far.counts, ones]), vocab.size, "sparse")
    return counts_from_table(table, order, vocab.size) if table is not None else so_far
