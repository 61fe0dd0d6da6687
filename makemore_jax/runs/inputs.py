"""A run's input: a file, or a list of words read by the same rules as a file; a host's part of a file.

A list of words is read as the file its words would make, one per line: each
word stripped, blank ones dropped, the same refusals (a word too long, a NUL,
no words at all). Its SHA-256 is that file's, so a run begun on a list
resumes from the file that holds the same lines.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax

from ..data.words import Dataset, WordArray, bundled_names_path, parse_word_array, read_bytes
from ..errors import MakemoreError
from ..seeding import seed_key
from ..training.config import TrainConfig
from ..training.parallel import DataParallel

Input = str | os.PathLike[str] | Sequence[str] | None  # a path, the words themselves, or None: the default


@dataclass
class Words:
    """An input read: its words (None where each host reads its own part), their SHA-256 and where they came from."""

    words: WordArray | None
    sha256: str
    path: str | None  # the file's absolute path; None for a list of words
    shown: str  # how messages and the data line name it: the path as given, or "words"

    def record(self, num_words: int) -> dict[str, object]:
        """The training record of a run on this input (what resuming and new-only sampling read back)."""
        where = {"input": self.path} if self.path is not None else {}
        return {**where, "input_sha256": self.sha256, "num_words": num_words}


def is_path(source: Input) -> bool:
    return isinstance(source, (str, os.PathLike))


def shown(source: Input) -> str:
    """How messages name an input: the path as given (the bundled names.txt's for None), or "words"."""
    if source is None:
        return bundled_names_path()
    return os.fspath(source) if is_path(source) else "words"  # type: ignore[arg-type]


def as_bytes(words: Sequence[str]) -> bytes:
    """The file a list of words makes, one per line; MakemoreError for an item that is not a one-line str."""
    if isinstance(words, (bytes, bytearray)):
        raise MakemoreError(f"the input must be a path or a list of words, got {type(words).__name__}")
    lines = []
    for i, word in enumerate(words):
        if not isinstance(word, str):
            raise MakemoreError(f"word {i + 1} is not a str: {word!r}")
        if "\n" in word or "\r" in word:
            raise MakemoreError(f"word {i + 1} {word[:40]!r} holds a line break: a word is one line of a word list")
        try:
            lines.append((word + "\n").encode("utf-8"))
        except UnicodeEncodeError as err:
            bad = word[err.start : err.end]
            raise MakemoreError(f"word {i + 1} {word[:40]!r} holds {bad!r}, which is not a character") from None
    return b"".join(lines)


def read(source: Input, *, hashed_only: bool = False) -> Words:
    """The input's words and SHA-256: a path's file, a list's lines, None the bundled names.txt.

    hashed_only: the file is only hashed (each host of a multi-host run reads its own part later).
    """
    if source is None:
        source = bundled_names_path()
    if is_path(source):
        shown = os.fspath(source)  # type: ignore[arg-type]
        if hashed_only:
            from ..data import hosts

            return Words(None, hosts.file_sha256(shown), os.path.abspath(shown), shown)
        raw = read_bytes(shown)
        path: str | None = os.path.abspath(shown)
    else:
        if hashed_only:
            raise MakemoreError("a multi-host run reads its input from a file, not from a list of words")
        raw, shown, path = as_bytes(source), "words", None  # type: ignore[arg-type]
    return Words(parse_word_array(raw, source=shown), hashlib.sha256(raw).hexdigest(), path, shown)


def dataset(
    source: Input, cfg: TrainConfig, parallel: DataParallel | None, check: Callable[[Words], None] | None = None
) -> tuple[Dataset, Words, int]:
    """(the split data, the input, the number of words) of a run of cfg.

    One process reads the whole input. Each process of a multi-host run reads
    and parses only its part of the file (data.hosts); every one hashes it.
    check (a resumed run's: is this its input?) sees the input before its words are split.
    """
    key = seed_key(cfg.seed, "split")
    if parallel is not None and jax.process_count() > 1:
        from ..data import hosts

        read_in = read(source, hashed_only=True)
        if check is not None:
            check(read_in)
        data = hosts.build(read_in.shown, key, cfg.split, len(parallel.local_devices()))
        return data, read_in, sum(data.sizes.values())
    read_in = read(source)
    assert read_in.words is not None
    if check is not None:
        check(read_in)
    return Dataset.build(read_in.words, key, cfg.split), read_in, len(read_in.words)


def recorded(training: dict) -> str:
    """The input file a run recorded (to resume it without naming its input); MakemoreError if none or gone."""
    path = training.get("input")
    if not isinstance(path, str) or not path:
        raise MakemoreError(
            "resume: the run does not record an input file (it was given a list of words): give its words "
            "(-i FILE, or the words as input)"
        )
    if not os.path.isfile(path):
        raise MakemoreError(f"resume: the run's input {path} is gone: give the words it was trained on (-i FILE)")
    return path
