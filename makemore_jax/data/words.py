"""Reading words, the vocabulary, encoding, bigram pairs and the seeded split.

A word list is encoded as one stream of ids in which the boundary id 0 stands
between words and at both ends: ``. e m m a . o l i v i a .``. Every bigram of a
word, including the start and end pairs, is then a pair of neighbours in that
stream, so ``xs, ys = stream[:-1], stream[1:]`` with no loop per character.

A large list is never a Python string per word: ``parse_word_array`` turns the
file's bytes into a WordArray (every character's id end to end, and where each
word starts) in a few numpy passes per block of bytes, by exactly the rules of
``parse_words`` (kept as the plain-Python statement of them). A Dataset's
splits are WordArrays gathered from it by the seeded permutation, and every
encoding (the stream, the padded rows, the n-grams) is read from the arrays;
a word becomes a str only when someone reads it as one.
"""

from __future__ import annotations

import functools
import importlib.resources
import operator
import os
import sys
from collections.abc import Hashable, Iterator, Sequence
from collections.abc import Sequence as SequenceABC
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO, SupportsIndex, overload

import jax
import numpy as np

from ..errors import MakemoreError
from ..seeding import permutation

BOUNDARY = "."  # how id 0, the start/end token, is shown
BOUNDARY_ID = 0
_SEPARATOR = "\n"  # never inside a word: words are lines


def bundled_names_path() -> str:
    """Path of the names.txt shipped with the package (32,033 names)."""
    return str(importlib.resources.files("makemore_jax").joinpath("names.txt"))


MAX_WORD_LEN = 1000  # characters; a longer line is not a word (and would blow up the padded batches)


def parse_words(
    raw: bytes, source: str = "input", *, allow_empty: bool = False, byte_order_mark: bool = True
) -> list[str]:
    """Decode UTF-8 bytes into words: one per line, whitespace stripped, blank lines dropped.

    The rules, applied to every file the tool reads: a byte-order mark at the
    start is dropped; lines end at \\n, \\r\\n or a lone \\r (so no word holds a
    line break); surrounding whitespace (str.isspace) is stripped; a character
    is one Unicode code point, with no normalisation (é and e + U+0301 differ).
    Refused with a MakemoreError naming the line: bytes that are not UTF-8, a
    NUL character (a binary or UTF-16 file), a word longer than MAX_WORD_LEN
    characters, and a file with no word at all (unless allow_empty: one
    process's part of a file may hold none). byte_order_mark=False keeps a
    leading U+FEFF as a character (a part that does not start the file).
    """
    if byte_order_mark and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise MakemoreError(
            f"{source}: line {_line_of(raw[: err.start])} is not valid UTF-8 (byte 0x{raw[err.start]:02x})"
        ) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise MakemoreError(f"{source}: line {line} holds a NUL character (is it a binary or UTF-16 file?)")
    lines = [line.strip() for line in text.split("\n")]
    if lines and max(map(len, lines)) > MAX_WORD_LEN:
        i = next(i for i, line in enumerate(lines) if len(line) > MAX_WORD_LEN)
        raise MakemoreError(
            f"{source}: line {i + 1} has {len(lines[i]):,} characters; a word may have at most {MAX_WORD_LEN:,}"
        )
    words = [w for w in lines if w]
    if not words and not allow_empty:
        raise MakemoreError(f"{source}: no words (the file is empty or holds only blank lines)")
    return words


def _line_of(prefix: bytes) -> int:
    """The line number at the end of prefix, lines ending at \\n, \\r\\n or \\r."""
    return prefix.count(b"\n") + prefix.count(b"\r") - prefix.count(b"\r\n") + 1


def read_words(path: str | os.PathLike[str]) -> list[str]:
    """Read a UTF-8 text file of words, one per line (see ``parse_words``)."""
    return parse_words(read_bytes(path), source=os.fspath(path))


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """A file's bytes; MakemoreError naming the file if it cannot be read."""
    with reading(path) as f:
        return f.read()


@contextmanager
def reading(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """The file opened for reading bytes; an OSError opening or reading it becomes a MakemoreError naming it."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            yield f
    except FileNotFoundError:
        raise MakemoreError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise MakemoreError(f"{path}: is a directory, not a file") from None
    except OSError as err:
        raise MakemoreError(f"{path}: cannot read ({err.strerror})") from None


# ---- the vectorised parser: bytes to code points and word boundaries -----------------------

PARSE_BLOCK = 1 << 22  # bytes parsed at a time (whole lines): what the parser's temporaries are sized by
_BYTE_ORDER_MARK = b"\xef\xbb\xbf"


@functools.cache
def _whitespace_table() -> np.ndarray:
    """bool (K,): whether code point c < K is whitespace (str.isspace); no code point from K on is.

    Built once from str.isspace itself (29 code points, the largest U+3000),
    so the parser strips exactly what ``str.strip()`` strips.
    """
    spaces = [c for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    table = np.zeros(max(spaces) + 1, bool)
    table[spaces] = True
    return table


@functools.cache
def _ascii_whitespace_table() -> np.ndarray:
    """bool (128,): _whitespace_table below 128 (an ASCII block's, without scanning every code point)."""
    return np.array([chr(c).isspace() for c in range(128)])


def _space_positions(cps: np.ndarray) -> np.ndarray:
    """int64: the positions of the whitespace characters (str.isspace), \\n and \\r among them.

    Only characters at or below the largest whitespace code point are looked
    up; in a word list that is a few per line, so the pass over every
    character is one comparison.
    """
    table = _ascii_whitespace_table() if cps.dtype == np.uint8 else _whitespace_table()
    top = int(np.flatnonzero(table)[-1])
    maybe = np.flatnonzero(cps <= top)
    return maybe[table[cps[maybe]]]


@dataclass
class _Block:
    """What one block of whole lines holds: its words' code points and lengths, and its first faults."""

    codes: np.ndarray  # the words' code points, word after word (uint8 for ASCII, else uint32)
    lengths: np.ndarray  # int64 (W,)
    lines: int  # line breaks in the block
    nul_line: int | None  # 0-based line (within the block) of the first NUL
    long_line: int | None  # 0-based line of the first word longer than MAX_WORD_LEN, and its length
    long_length: int = 0


def _parse_block(cps: np.ndarray) -> _Block:
    """The words of a block's code points, by parse_words's rules, working on its whitespace.

    A line ends at \\n or at a \\r not followed by \\n (a \\r before \\n is
    whitespace inside the break's run, so it goes with it). Take the maximal
    runs of whitespace: a run that holds a line break, opens the block or
    closes it separates words (it is the stripped ends of lines and the blank
    lines between them); any other run lies inside a line between two
    non-whitespace characters, so it is inside a word. The words are then
    exactly the non-empty gaps between separating runs. All the work but a
    couple of passes is on the whitespace positions, about one per line.
    """
    n = len(cps)
    space = _space_positions(cps)
    ch = cps[space]
    if (ch == 10).all():  # the usual list: no whitespace but \n, so the words are the non-empty lines
        lengths = np.diff(space, prepend=-1, append=n) - 1
        starts = np.concatenate([[0], space + 1])[lengths > 0]
        return _block_words(cps, cps != 10, starts, lengths[lengths > 0], space)
    follower = cps[np.minimum(space + 1, max(n - 1, 0))]
    is_break = (ch == 10) | ((ch == 13) & ((follower != 10) | (space == n - 1)))
    opens = np.diff(space, prepend=-2) != 1  # a whitespace position that starts a run
    run_first = np.flatnonzero(opens)
    run_last = np.append(run_first[1:] - 1, len(space) - 1) if len(space) else run_first
    has_break = np.logical_or.reduceat(is_break, run_first) if len(space) else np.zeros(0, bool)
    separates = has_break | (space[run_first] == 0) | (space[run_last] == n - 1)
    gap_start = np.concatenate([[0], space[run_last[separates]] + 1])
    gap_end = np.concatenate([space[run_first[separates]], [n]])
    word = gap_end > gap_start
    starts, lengths = gap_start[word], (gap_end - gap_start)[word]
    keep = np.ones(n, bool)
    keep[space[separates[np.cumsum(opens) - 1]]] = False  # the characters of separating runs
    return _block_words(cps, keep, starts, lengths, space[is_break])


def _block_words(
    cps: np.ndarray, keep: np.ndarray, starts: np.ndarray, lengths: np.ndarray, breaks: np.ndarray
) -> _Block:
    """The _Block of words at starts with lengths, keep marking their characters; breaks: where lines end.

    A fault's line is the number of breaks before it.
    """
    nul = None
    if len(cps) and not cps.all():
        nul = int(np.searchsorted(breaks, int(np.argmin(cps))))
    too_long = np.flatnonzero(lengths > MAX_WORD_LEN)
    long_line = int(np.searchsorted(breaks, starts[too_long[0]])) if len(too_long) else None
    long_length = int(lengths[too_long[0]]) if len(too_long) else 0
    return _Block(cps[keep], lengths.astype(np.int64), len(breaks), nul, long_line, long_length)


def _block_ends(raw: bytes, start: int, size: int) -> list[int]:
    """Where the blocks of raw[start:] end: just after a \\n at least `size` bytes on, or at the end."""
    ends, at = [], start
    while at < len(raw):
        newline = raw.find(b"\n", at + size - 1)
        at = len(raw) if newline < 0 else newline + 1
        ends.append(at)
    return ends


def _parse_blocks(
    raw: bytes, source: str, allow_empty: bool, byte_order_mark: bool
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (code points, lengths) of the words of each block of raw; parse_words's MakemoreErrors.

    The bytes are parsed PARSE_BLOCK at a time, each block cut just after a
    \\n, so it holds whole lines and no UTF-8 sequence or \\r\\n straddles two
    blocks. An ASCII block is its own code points (uint8); any other is
    decoded by Python's UTF-8 codec, which checks it, into uint32. Faults come
    in parse_words's order: the first invalid UTF-8 at once, then the first
    NUL, then the first long word.
    """
    start = len(_BYTE_ORDER_MARK) if byte_order_mark and raw.startswith(_BYTE_ORDER_MARK) else 0
    view = memoryview(raw)
    blocks, lines_before, nul, long = [], 0, None, None
    for end in _block_ends(raw, start, PARSE_BLOCK):
        chunk = view[start:end]
        cps = np.frombuffer(chunk, np.uint8)
        if len(cps) and int(cps.max()) >= 0x80:
            try:
                text = str(chunk, "utf-8")
            except UnicodeDecodeError as err:
                line = lines_before + _line_of(bytes(chunk[: err.start]))
                raise MakemoreError(
                    f"{source}: line {line} is not valid UTF-8 (byte 0x{chunk[err.start]:02x})"
                ) from None
            cps = np.frombuffer(text.encode("utf-32-le"), "<u4")
            del text
        block = _parse_block(cps)
        if nul is None and block.nul_line is not None:
            nul = lines_before + block.nul_line + 1
        if long is None and block.long_line is not None:
            long = (lines_before + block.long_line + 1, block.long_length)
        blocks.append((block.codes, block.lengths))
        lines_before += block.lines
        start = end
    if nul is not None:
        raise MakemoreError(f"{source}: line {nul} holds a NUL character (is it a binary or UTF-16 file?)")
    if long is not None:
        raise MakemoreError(
            f"{source}: line {long[0]} has {long[1]:,} characters; a word may have at most {MAX_WORD_LEN:,}"
        )
    if not allow_empty and not any(len(n) for _, n in blocks):
        raise MakemoreError(f"{source}: no words (the file is empty or holds only blank lines)")
    return blocks


def _offsets(lengths: np.ndarray) -> np.ndarray:
    """int64 (W + 1,): 0 and the running sum of the lengths, where each word starts and the last ends."""
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def parse_code_points(
    raw: bytes, source: str = "input", *, allow_empty: bool = False, byte_order_mark: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``parse_words`` as arrays: the words' code points end to end, and int64 offsets (W + 1,).

    Word k is codes[offsets[k]:offsets[k + 1]]: the same words by the same
    rules, with the same MakemoreErrors naming the same lines, but without a
    Python string per word (a few numpy passes over each block of bytes, see
    _parse_blocks). codes is uint8 when the input is ASCII, else uint32.
    """
    blocks = _parse_blocks(raw, source, allow_empty, byte_order_mark)
    codes = np.concatenate([c for c, _ in blocks] or [np.zeros(0, np.uint8)])
    return codes, _offsets(np.concatenate([n for _, n in blocks] or [np.zeros(0, np.int64)]))


def parse_word_array(
    raw: bytes, source: str = "input", *, allow_empty: bool = False, byte_order_mark: bool = True
) -> WordArray:
    """The words of parse_words as a WordArray over the vocabulary of their characters.

    Memory: the bytes, the ids (one byte a character for up to 255
    characters) and 8 bytes a word, plus one block's temporaries; each block's
    code points become ids as soon as the vocabulary is known.
    """
    blocks = _parse_blocks(raw, source, allow_empty, byte_order_mark)
    vocab, table = _vocabulary_of([codes for codes, _ in blocks])
    ids = np.concatenate([table[codes] for codes, _ in blocks] or [np.zeros(0, table.dtype)])
    lengths = np.concatenate([n for _, n in blocks] or [np.zeros(0, np.int64)])
    return WordArray(ids, _offsets(lengths), vocab, own_vocabulary=True)


def read_word_array(path: str | os.PathLike[str]) -> WordArray:
    """read_words as a WordArray (see parse_word_array)."""
    return parse_word_array(read_bytes(path), source=os.fspath(path))


LOOKUP_BELOW = 1 << 16  # vocabularies of code points below this encode by a table lookup, else by binary search


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


@dataclass(frozen=True)
class Vocabulary:
    """Characters with ids 1..V-1 in sorted order; id 0 is the boundary ``.``.

    A character here is one Unicode code point. The boundary is a separate
    token, so a word may itself contain ``.`` (it then gets an id of its own).
    """

    chars: tuple[str, ...]

    def __post_init__(self) -> None:
        if any(not isinstance(c, str) or len(c) != 1 for c in self.chars):
            raise MakemoreError("vocabulary entries must be single characters")
        if list(self.chars) != sorted(set(self.chars)):
            raise MakemoreError("vocabulary must be sorted and without repeats")
        if _SEPARATOR in self.chars:
            raise MakemoreError("vocabulary cannot hold a newline")
        if any("\ud800" <= c <= "\udfff" for c in self.chars):
            raise MakemoreError("vocabulary cannot hold a lone surrogate (not a Unicode character)")

    @classmethod
    def from_words(cls, words: Sequence[str]) -> Vocabulary:
        return cls(tuple(sorted(set("".join(words)))))

    @property
    def size(self) -> int:
        """V, the number of ids including the boundary."""
        return len(self.chars) + 1

    def itos(self, i: int) -> str:
        return BOUNDARY if i == BOUNDARY_ID else self.chars[i - 1]

    def decode(self, ids: Sequence[int]) -> str:
        """Ids to text, stopping at the first boundary id."""
        out = []
        for i in ids:
            i = int(i)
            if i == BOUNDARY_ID:
                break
            out.append(self.chars[i - 1])
        return "".join(out)

    def encode_stream(self, words: Sequence[str]) -> np.ndarray:
        """int32 ids of ``. w1 . w2 ... wn .``; the boundary id 0 between and around words.

        words: a list of str, or a WordArray (its ids are mapped, not its
        strings encoded). Raises MakemoreError naming the first character not
        in the vocabulary.
        """
        if isinstance(words, WordArray):
            return words.in_vocabulary(self).stream()
        cps = _code_points(_SEPARATOR + _SEPARATOR.join(words) + _SEPARATOR)
        ids = _lookup_ids(cps, self)
        bad = (ids == BOUNDARY_ID) & (cps != ord(_SEPARATOR))  # the separator is never in a vocabulary
        if bad.any():
            first = int(np.argmax(bad))
            word_index = int(np.count_nonzero(cps[:first] == ord(_SEPARATOR))) - 1
            raise _unknown_character(chr(int(cps[first])), words[word_index])
        return ids

    def code_points(self) -> np.ndarray:
        """int64 (V − 1,): the code point of each id 1..V−1, increasing."""
        return _code_points("".join(self.chars)).astype(np.int64)

    def to_json(self) -> list[str]:
        return list(self.chars)

    @classmethod
    def from_json(cls, chars: object) -> Vocabulary:
        if not isinstance(chars, list):
            raise MakemoreError("vocabulary must be a list of characters")
        return cls(tuple(chars))


def _unknown_character(ch: str, word: str) -> MakemoreError:
    return MakemoreError(f"character {ch!r} (U+{ord(ch):04X}) in word {word!r} is not in the model's vocabulary")


def _lookup_ids(cps: np.ndarray, vocab: Vocabulary) -> np.ndarray:
    """int32: the id of each code point in vocab, 0 (the boundary's) where it has none.

    One table lookup per character while the vocabulary's code points are
    below LOOKUP_BELOW, else a binary search.
    """
    known = vocab.code_points()
    if not len(known):
        return np.zeros(len(cps), np.int32)
    if known[-1] < LOOKUP_BELOW:
        table = np.zeros(int(known[-1]) + 2, np.int32)  # the last entry (0) stands for every code point above
        table[known] = np.arange(1, len(known) + 1, dtype=np.int32)
        return table[np.minimum(cps, len(table) - 1)]
    pos = np.searchsorted(known, cps)
    found = known[np.minimum(pos, len(known) - 1)] == cps
    return np.where(found, pos + 1, 0).astype(np.int32)


def id_dtype(vocab_size: int) -> np.dtype:
    """The smallest dtype that holds ids 0..vocab_size − 1: uint8 up to 256 ids, uint16 up to 65,536, else int32."""
    return np.dtype(np.uint8 if vocab_size <= 1 << 8 else np.uint16 if vocab_size <= 1 << 16 else np.int32)


def _vocabulary_of(code_arrays: list[np.ndarray]) -> tuple[Vocabulary, np.ndarray]:
    """The vocabulary of the code points in the arrays, and the table from each code point 0..max to its id."""
    top = max((int(c.max()) for c in code_arrays if len(c)), default=-1)
    seen = np.zeros(top + 1, bool)
    for codes in code_arrays:
        seen[codes] = True
    vocab = Vocabulary(tuple(map(chr, np.flatnonzero(seen).tolist())))
    return vocab, _id_table(vocab, top)


def _id_table(vocab: Vocabulary, top: int) -> np.ndarray:
    """(top + 1,) of id_dtype: the id of each code point 0..top in vocab (whose code points are all <= top), else 0."""
    table = np.zeros(top + 1, id_dtype(vocab.size))
    table[vocab.code_points()] = np.arange(1, vocab.size, dtype=table.dtype)
    return table


TAKE_WORDS = 1 << 18  # words gathered at a time by WordArray.take (bounds its index arrays)
COUNT_BLOCK = 1 << 22  # characters counted at a time by WordArray.compact


class WordArray(SequenceABC[str]):
    """Words held as arrays, read as a sequence of str: what a Dataset's splits are.

    ids (uint8 while the vocabulary has at most 256 ids, see id_dtype) hold
    every word's characters as ids of vocab, word after word, with no
    boundary between them; word k is ids[offsets[k]:offsets[k + 1]], offsets
    int64 (W + 1,). A list of 20M words takes its characters plus 8 bytes a
    word, not a Python string a word. Encodings (``Vocabulary.encode_stream``,
    ``encode_padded``, the n-gram counting and scoring) read the arrays. A
    word is decoded only when it is read as a str (words[i], iteration,
    ``==`` with a list): iterating decodes the whole list once, in one pass,
    and keeps it. A slice is a view (offsets[a:b + 1] over the same ids); take
    gathers rows into new arrays.
    """

    __slots__ = ("ids", "offsets", "vocab", "_strings", "_own_vocabulary")

    def __init__(self, ids: np.ndarray, offsets: np.ndarray, vocab: Vocabulary, own_vocabulary: bool = False) -> None:
        self.ids, self.offsets, self.vocab = ids, offsets, vocab
        self._strings: list[str] | None = None
        self._own_vocabulary = own_vocabulary  # known to use every character of vocab (compact: nothing to do)

    @classmethod
    def from_strings(cls, words: Sequence[str], vocab: Vocabulary | None = None) -> WordArray:
        """The words (str) as a WordArray over vocab, or (None) over the vocabulary of their characters.

        MakemoreError for a character outside vocab, naming the word; or as
        Vocabulary says for characters no vocabulary may hold.
        """
        if isinstance(words, WordArray):
            return words if vocab is None else words.in_vocabulary(vocab)
        words = words if isinstance(words, (list, tuple)) else list(words)
        offsets = _offsets(np.fromiter(map(len, words), np.int64, len(words)))
        # surrogatepass: a lone surrogate gets to Vocabulary, which names it
        cps = np.frombuffer("".join(words).encode("utf-32-le", "surrogatepass"), "<u4")
        if vocab is None:
            return cls.from_code_points(cps, offsets)
        ids = _lookup_ids(cps, vocab)
        if len(ids) and not ids.all():
            first = int(np.argmin(ids))
            word = int(np.searchsorted(offsets, first, side="right")) - 1
            raise _unknown_character(chr(int(cps[first])), words[word])
        return cls(ids.astype(id_dtype(vocab.size)), offsets, vocab)

    @classmethod
    def from_code_points(cls, codes: np.ndarray, offsets: np.ndarray) -> WordArray:
        """Words given as code points end to end (see parse_code_points), over the vocabulary of those code points."""
        codes = np.asarray(codes)
        vocab, table = _vocabulary_of([codes])
        return cls(table[codes], np.asarray(offsets, np.int64), vocab, own_vocabulary=True)

    @classmethod
    def empty(cls, vocab: Vocabulary) -> WordArray:
        return cls(np.zeros(0, id_dtype(vocab.size)), np.zeros(1, np.int64), vocab)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        """int64 (W,): each word's length in characters."""
        return np.diff(self.offsets)

    def chars(self) -> np.ndarray:
        """The ids of every character of these words, word after word (a view)."""
        return self.ids[self.offsets[0] : self.offsets[-1]]

    @overload
    def __getitem__(self, index: SupportsIndex) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> WordArray: ...

    def __getitem__(self, index: SupportsIndex | slice) -> str | WordArray:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return self.take(np.arange(start, stop, step))
            return WordArray(self.ids, self.offsets[start : max(start, stop) + 1], self.vocab)
        k = operator.index(index)
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError("word index out of range")
        if self._strings is not None:
            return self._strings[k]
        return "".join(self.vocab.chars[i - 1] for i in self.ids[self.offsets[k] : self.offsets[k + 1]].tolist())

    def strings(self) -> list[str]:
        """Every word as a str, decoded in one pass (the ids mapped to code points, then split at
        boundaries) and kept for the next call."""
        if self._strings is None:
            if not len(self):
                self._strings = []
            else:
                code_of = np.array([ord(_SEPARATOR), *map(ord, self.vocab.chars)], "<u4")
                self._strings = code_of[self.stream()[1:-1]].tobytes().decode("utf-32-le").split(_SEPARATOR)
        return self._strings

    def __iter__(self) -> Iterator[str]:
        return iter(self.strings())

    def __reversed__(self) -> Iterator[str]:
        return reversed(self.strings())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, WordArray):
            if len(self) != len(other):
                return False
            if self.vocab == other.vocab:
                return bool(
                    np.array_equal(self.lengths(), other.lengths()) and np.array_equal(self.chars(), other.chars())
                )
            return self.strings() == other.strings()
        if isinstance(other, (list, tuple)):
            return len(self) == len(other) and self.strings() == list(other)
        return NotImplemented

    # no __hash__: defining __eq__ leaves it None, so a WordArray is unhashable, as a list is

    def __add__(self, other: object) -> list[str]:
        """Concatenated with another sequence of words: a list of str, as two lists would give."""
        if not isinstance(other, SequenceABC) or isinstance(other, str):
            return NotImplemented
        return self.strings() + list(other)

    def __radd__(self, other: object) -> list[str]:
        if not isinstance(other, SequenceABC) or isinstance(other, str):
            return NotImplemented
        return list(other) + self.strings()

    def __repr__(self) -> str:
        return (
            f"WordArray({len(self):,} words, {int(self.offsets[-1] - self.offsets[0]):,} characters,"
            f" vocabulary of {self.vocab.size})"
        )

    def take(self, rows: np.ndarray) -> WordArray:
        """The words at rows, in that order, as new arrays: one vectorised gather per TAKE_WORDS words."""
        rows = np.asarray(rows, np.int64)
        starts = self.offsets[rows]
        lengths = self.offsets[rows + 1] - starts
        offsets = _offsets(lengths)
        ids = np.empty(int(offsets[-1]), self.ids.dtype)
        for a in range(0, len(rows), TAKE_WORDS):
            b = min(a + TAKE_WORDS, len(rows))
            lo, hi = int(offsets[a]), int(offsets[b])
            # character j of word k comes from starts[k] + j, and goes to offsets[k] + j
            ids[lo:hi] = self.ids[np.repeat(starts[a:b] - offsets[a:b], lengths[a:b]) + np.arange(lo, hi)]
        return WordArray(ids, offsets, self.vocab)

    def in_vocabulary(self, vocab: Vocabulary) -> WordArray:
        """The same words with ids of vocab (self where it is this vocabulary already).

        MakemoreError naming the first character (and its word) that vocab lacks.
        """
        if vocab == self.vocab:
            return self
        table = np.zeros(self.vocab.size, id_dtype(vocab.size))
        table[1:] = _lookup_ids(self.vocab.code_points(), vocab)
        ids = table[self.chars()]
        if len(ids) and not ids.all():
            first = int(np.argmin(ids))
            word = int(np.searchsorted(self.offsets - self.offsets[0], first, side="right")) - 1
            raise _unknown_character(self.vocab.chars[int(self.chars()[first]) - 1], self[word])
        return WordArray(ids, self.offsets - self.offsets[0], vocab)

    def compact(self) -> WordArray:
        """The same words over the vocabulary of their own characters (what Vocabulary.from_words gives)."""
        if self._own_vocabulary:
            return self
        chars, used = self.chars(), np.zeros(self.vocab.size, bool)
        for a in range(0, len(chars), COUNT_BLOCK):  # bincount widens to int64: a block at a time
            used |= np.bincount(chars[a : a + COUNT_BLOCK], minlength=self.vocab.size) > 0
        used = used[1:]
        if used.all():
            return self
        return self.in_vocabulary(Vocabulary(tuple(c for c, u in zip(self.vocab.chars, used) if u)))

    def stream(self) -> np.ndarray:
        """int32 ids of ``. w1 . w2 ... wn .``, as Vocabulary.encode_stream gives them: each word's ids put
        where the boundaries leave room."""
        chars = self.chars()
        out = np.zeros(len(chars) + len(self) + 1, np.int32)
        room = np.ones(len(out), bool)
        room[self.offsets - self.offsets[0] + np.arange(len(self) + 1)] = False
        out[room] = chars
        return out

    def padded(self, block_size: int) -> tuple[np.ndarray, np.ndarray]:
        """encode_padded of these words in their own vocabulary (the caller checks the lengths)."""
        lengths = self.lengths().astype(np.int32)
        tokens = np.zeros((len(self), block_size + 1), np.int32)
        column = np.arange(block_size + 1, dtype=np.int32)
        tokens[(column[None, :] >= 1) & (column[None, :] <= lengths[:, None])] = self.chars()
        return tokens, lengths


def word_lengths(words: Sequence[str]) -> np.ndarray:
    """int64 (W,): the length of each word, from the offsets of a WordArray."""
    if isinstance(words, WordArray):
        return words.lengths()
    return np.fromiter(map(len, words), np.int64, len(words))


def take_words(words: Sequence[str], rows: np.ndarray) -> Sequence[str]:
    """The words at rows: a WordArray's take, or a list."""
    return words.take(rows) if isinstance(words, WordArray) else _take(words, rows)


def bigram_pairs(words: Sequence[str], vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """All (previous, next) id pairs of the words, start and end included.

    Returns int32 arrays xs, ys of length sum(len(w) + 1); 228,146 for names.txt.
    """
    stream = vocab.encode_stream(words)
    return stream[:-1], stream[1:]


def split_words(
    words: Sequence[str], key: jax.Array, fractions: Sequence[float] = (0.8, 0.1, 0.1)
) -> tuple[list[str], list[str], list[str]]:
    """Shuffle the words with ``key`` and cut them into train, dev and test.

    Dev and test get floor(fraction * n) words each; train gets the rest, so a
    tiny list still trains. The same key always gives the same split.
    """
    n = len(words)
    n_train, n_dev, _ = split_sizes(n, fractions)
    shuffled = _take(words, permutation(key, n))
    return shuffled[:n_train], shuffled[n_train : n_train + n_dev], shuffled[n_train + n_dev :]


def _take(words: Sequence[str], rows: np.ndarray) -> list[str]:
    """[words[r] for r in rows], without a Python loop per word."""
    if len(rows) == 0:
        return []
    picked = operator.itemgetter(*rows.tolist())(words)
    return [picked] if len(rows) == 1 else list(picked)


def split_sizes(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """(train, dev, test) sizes of n words: floor(fraction * n) for dev and test, the rest for train."""
    fractions = validate_split(fractions)
    n_dev, n_test = int(fractions[1] * n), int(fractions[2] * n)
    return n - n_dev - n_test, n_dev, n_test


def validate_split(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Three non-negative proportions, normalised to sum to 1 (so 80,10,10 works too)."""
    if len(fractions) != 3:
        raise MakemoreError("the split needs three numbers: train, dev, test")
    if any(not np.isfinite(f) or f < 0 for f in fractions):
        raise MakemoreError("split proportions must be finite and non-negative")
    total = float(sum(fractions))
    if total <= 0 or fractions[0] <= 0:
        raise MakemoreError("the split must give the training set a positive share")
    train, dev, test = (float(f) / total for f in fractions)
    return train, dev, test


def encode_padded(words: Sequence[str], vocab: Vocabulary, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Words as rows ``[0, c1 .. cn, 0, 0, ...]`` of width block_size + 1, and their lengths.

    Inputs are row[:-1] and targets row[1:]; target position t counts while
    t <= n (the n characters and the end). Raises MakemoreError for a word
    longer than block_size - 1 characters. words: a list of str or a WordArray.
    """
    lengths = word_lengths(words).astype(np.int32)
    if len(words) and int(lengths.max()) > block_size - 1:
        longest = words[int(np.argmax(lengths))]
        raise MakemoreError(
            f"word {longest[:40]!r} has {len(longest)} characters; the model handles at most {block_size - 1}"
        )
    if isinstance(words, WordArray):
        return words.in_vocabulary(vocab).padded(block_size)
    stream = vocab.encode_stream(words)
    width = block_size + 1
    tokens = np.zeros((len(words), width), np.int32)
    # word k's boundary sits at stream position b_k and its characters right after, so the
    # character at p goes to row k, column p − b_k: flat index p + (k·width − b_k)
    boundaries = np.concatenate([[0], np.cumsum(lengths.astype(np.int64) + 1)[:-1]])
    offset = np.arange(len(words), dtype=np.int64) * width - boundaries
    chars = np.flatnonzero(stream)
    tokens.reshape(-1)[chars + np.repeat(offset, lengths)] = stream[chars]
    return tokens, lengths


SPLITS = ("train", "dev", "test")


@dataclass
class Dataset:
    """The words of each split and the vocabulary of all of them, with cached encodings.

    A built Dataset (``build``) holds each split as a WordArray, so its
    encodings (padded, pairs, sample, max_word_len) are array passes; one made
    by hand may hold lists of str, which work the same.
    """

    vocab: Vocabulary
    words: dict[str, Sequence[str]]

    local_only = False  # True for a process's part of a multi-host run (data.hosts.SlicedDataset)

    def __post_init__(self) -> None:
        self._cache: dict[Hashable, Any] = {}

    @property
    def sizes(self) -> dict[str, int]:
        """Words in each split (of the whole list, also where this process holds a part)."""
        return {s: len(self.words[s]) for s in SPLITS}

    def combine(self, x: np.ndarray) -> np.ndarray:
        """Sums over the processes that hold parts of the data: here, x itself."""
        return x

    @classmethod
    def build(cls, words: Sequence[str], key: jax.Array, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> Dataset:
        """The words (a list of str, or a WordArray such as read_word_array's) shuffled with key and split.

        The vocabulary is that of the words' characters; the split is
        split_words's (the same ``permutation(key, n)``, so the same words in
        the same order), each split gathered from the arrays.
        """
        words = WordArray.from_strings(words).compact()
        n = len(words)
        n_train, n_dev, _ = split_sizes(n, fractions)
        order = permutation(key, n)
        cuts = (0, n_train, n_train + n_dev, n)
        return cls(words.vocab, {s: words.take(order[a:b]) for s, a, b in zip(SPLITS, cuts[:-1], cuts[1:])})

    def sample(self, most: int, key: jax.Array) -> Dataset:
        """The same vocabulary with each split cut to at most `most` of its words, drawn without
        replacement with key (a fixed key: the same words at every call); most = 0 keeps every word."""
        if most <= 0 or all(n <= most for n in self.sizes.values()):
            return self
        cached = ("sample", most, np.asarray(jax.random.key_data(key)).tobytes())
        if cached not in self._cache:
            self._cache[cached] = self._sample(most, key)
        return self._cache[cached]

    def _sample(self, most: int, key: jax.Array) -> Dataset:
        words = {}
        for i, split in enumerate(SPLITS):
            ws = self.words[split]
            if len(ws) <= most:
                words[split] = ws
                continue
            # jax.random.choice(..., replace=False)'s draw: the permutation's first `most`
            rows = np.sort(permutation(jax.random.fold_in(key, i), len(ws))[:most])
            words[split] = take_words(ws, rows)
        return Dataset(self.vocab, words)

    @property
    def max_word_len(self) -> int:
        if "max_word_len" not in self._cache:
            self._cache["max_word_len"] = max(int(word_lengths(ws).max()) for ws in self.words.values() if len(ws))
        return self._cache["max_word_len"]

    def pairs(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        if ("pairs", split) not in self._cache:
            self._cache[("pairs", split)] = bigram_pairs(self.words[split], self.vocab)
        return self._cache[("pairs", split)]

    def padded(self, split: str, block_size: int) -> tuple[np.ndarray, np.ndarray]:
        if ("padded", split, block_size) not in self._cache:
            self._cache[("padded", split, block_size)] = encode_padded(self.words[split], self.vocab, block_size)
        return self._cache[("padded", split, block_size)]
