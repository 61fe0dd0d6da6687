"""ARPA files in: a character-level backoff model as KenLM and SRILM write it, read into a backoff model.

The format: optional lines before ``\\data\\``; then one ``ngram n=count``
line per order 1..N; then for each order a ``\\n-grams:`` section of exactly
that many entries, ``log10 p <white space> n tokens [<white space> log10
backoff]`` (no backoff at the highest order); then ``\\end\\``. Blank lines
between sections are allowed; what follows ``\\end\\`` is not read.

Every token is ``<s>``, ``</s>``, ``<unk>`` or one character: the
characters of the unigrams are the model's vocabulary (in code point order,
ids from 1, as every model of the package has it), and a character in a longer
n-gram must be a unigram too. ``</s>`` must be a unigram (else no word could
end). Anything else is refused in one line that names the file and the line:
a token of several characters, a section whose entries disagree with its
``\\data\\`` count, a probability that is not finite or above 1, a backoff
weight that is not finite or where none can be, an n-gram listed twice, a
missing section or ``\\end\\``. The scoring rules are ``models.ngram.backoff``'s.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np

from ..data.words import Vocabulary, read_bytes
from ..errors import MakemoreError
from ..models.ngram import MAX_ORDER, backoff
from ..training.config import TrainConfig
from ..training.fitted import Fitted

SPECIAL = {"</s>": 0, "<s>": -1, "<unk>": -2}  # ids relative to the vocabulary: <s> = V, <unk> = V + 1
COUNT_LINE = re.compile(r"ngram\s+(\d+)\s*=\s*(\d+)")


class _Lines:
    """The file's lines with their numbers (from 1), read front to back."""

    def __init__(self, text: str, source: str):
        self.lines = text.split("\n")
        self.last = len(self.lines) - (self.lines[-1] == "")  # the number of the file's last line
        self.at = 0
        self.source = source

    def error(self, number: int, why: str) -> MakemoreError:
        return MakemoreError(f"{self.source}: line {number}: {why}")

    def next_nonblank(self) -> tuple[int, str] | None:
        while self.at < len(self.lines):
            self.at += 1
            line = self.lines[self.at - 1].strip()
            if line:
                return self.at, line
        return None

    def unread(self) -> None:
        """The line next_nonblank returned last is returned again."""
        self.at -= 1


def _text(raw: bytes, source: str) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise MakemoreError(f"{source}: line {line}: not UTF-8 text") from None


def _declared(lines: _Lines) -> list[tuple[int, int]]:
    """The \\data\\ counts: [(count, line number)] of orders 1..N."""
    while True:
        got = lines.next_nonblank()
        if got is None:
            raise MakemoreError(f"{lines.source}: no \\data\\ line: not an ARPA file")
        if got[1] == "\\data\\":
            break
    declared: list[tuple[int, int]] = []
    while True:
        got = lines.next_nonblank()
        if got is None:
            break
        if not got[1].startswith("ngram"):
            lines.unread()  # the first section's header
            break
        number, line = got
        match = COUNT_LINE.fullmatch(line)
        if match is None:
            raise lines.error(number, f"expected 'ngram N=COUNT', got {line[:60]!r}")
        n, count = int(match.group(1)), int(match.group(2))
        if n != len(declared) + 1:
            raise lines.error(number, f"the count of order {n} where order {len(declared) + 1}'s belongs")
        declared.append((count, number))
    if not declared:
        raise lines.error(lines.at, "no 'ngram N=COUNT' line after \\data\\")
    if len(declared) > MAX_ORDER:
        raise lines.error(declared[-1][1], f"order {len(declared)}: at most {MAX_ORDER} is read")
    return declared


def _number(lines: _Lines, number: int, field: str, what: str) -> float:
    try:
        value = float(field)
    except ValueError:
        raise lines.error(number, f"{what} {field[:30]!r} is not a number") from None
    if not math.isfinite(value):
        raise lines.error(number, f"{what} {field!r} is not finite")
    return value


def _token(lines: _Lines, number: int, token: str) -> str:
    if token in SPECIAL or (len(token) == 1 and token != "\0"):
        return token
    raise lines.error(number, f"token {token[:30]!r} is not one character (nor <s>, </s>, <unk>)")


def _section(lines: _Lines, n: int, N: int, declared: tuple[int, int], entries: dict) -> None:
    """Order n's entries into entries {tokens: (log10 p, log10 bow, line)}, checked against its count."""
    got = lines.next_nonblank()
    if got is None or got[1] != f"\\{n}-grams:":
        number = got[0] if got else lines.last
        raise lines.error(number, f"expected the \\{n}-grams: section (\\data\\ declares order {N})")
    header, listed = got[0], 0
    while True:
        got = lines.next_nonblank()
        if got is None:
            break
        if got[1].startswith("\\"):
            lines.unread()  # the next section's header, or \end\
            break
        number, line = got
        fields = line.split()
        if len(fields) not in ((n + 1, n + 2) if n < N else (n + 1,)):
            expect = f"{n + 1} or {n + 2}" if n < N else f"{n + 1} (no backoff weight at the highest order)"
            raise lines.error(number, f"{len(fields)} field(s) in a {n}-gram entry, expected {expect}")
        prob = _number(lines, number, fields[0], "log10 probability")
        if prob > 0:
            raise lines.error(number, f"log10 probability {fields[0]} is above 0 (a probability above 1)")
        bow = _number(lines, number, fields[n + 1], "log10 backoff weight") if len(fields) == n + 2 else 0.0
        tokens = tuple(_token(lines, number, t) for t in fields[1 : n + 1])
        if tokens in entries:
            raise lines.error(number, f"{' '.join(tokens)!r} is listed twice (first at line {entries[tokens][2]})")
        entries[tokens] = (prob, bow, number)
        listed += 1
    count, count_line = declared
    if listed != count:
        raise lines.error(
            header, f"the {n}-grams section lists {listed:,} entries, \\data\\ says {count:,} (line {count_line})"
        )


def _vocabulary(lines: _Lines, entries: dict) -> Vocabulary:
    """The characters of the unigrams; every character of a longer n-gram among them, </s> too."""
    chars = {t[0] for t in entries if len(t) == 1 and t[0] not in SPECIAL}
    if ("</s>",) not in entries:
        raise MakemoreError(f"{lines.source}: </s> is not among the unigrams: no word could end")
    if not chars:
        raise MakemoreError(f"{lines.source}: its unigrams list no character")
    for tokens, (_, _, number) in entries.items():
        for t in tokens:
            if t not in SPECIAL and t not in chars:
                raise lines.error(number, f"{t!r} is not among the unigrams")
    try:
        return Vocabulary(tuple(sorted(chars)))
    except MakemoreError as err:
        raise MakemoreError(f"{lines.source}: {err}") from None


def _arrays(entries: dict, vocab: Vocabulary, N: int) -> dict[str, np.ndarray]:
    """The backoff model's parameters: entries sorted by order, then by token (the first most significant)."""
    V = vocab.size
    ids = {c: i for i, c in enumerate(vocab.chars, start=1)}
    ids.update({"</s>": 0, "<s>": V, "<unk>": V + 1})
    grams = np.full((len(entries), N), -1, np.int32)
    for row, tokens in enumerate(entries):
        grams[row, : len(tokens)] = [ids[t] for t in tokens]
    values = np.array([v[:2] for v in entries.values()], np.float64).reshape(-1, 2)
    tidy = np.lexsort((*grams.T[::-1], backoff.entry_orders(grams)))
    return {"grams": grams[tidy], "log10_prob": values[tidy, 0], "log10_backoff": values[tidy, 1]}


def read(raw: bytes, source: str) -> Fitted:
    """The backoff model of an ARPA file's bytes; MakemoreError naming source (and the line) otherwise."""
    lines = _Lines(_text(raw, source).replace("\r\n", "\n"), source)
    declared = _declared(lines)
    entries: dict[tuple[str, ...], tuple[float, float, int]] = {}
    for n, counted in enumerate(declared, start=1):
        _section(lines, n, len(declared), counted, entries)
    got = lines.next_nonblank()
    if got is None or got[1] != "\\end\\":
        raise lines.error(got[0] if got else lines.last, "expected \\end\\ after the last section")
    vocab = _vocabulary(lines, entries)
    params = _arrays(entries, vocab, len(declared))
    config = TrainConfig.create(backoff.NAME, order=len(declared))
    return Fitted(config, vocab, params, backoff.SAMPLE_BLOCK)


def read_file(path: str) -> Fitted:
    """The backoff model of the ARPA file at path."""
    return read(read_bytes(path), os.fspath(path))
