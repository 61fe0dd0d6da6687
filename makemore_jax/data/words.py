"""Reading words, the vocabulary, encoding, bigram pairs and the seeded split.

A word list is encoded as one stream of ids in which the boundary id 0 stands
between words and at both ends: ``. e m m a . o l i v i a .``. Every bigram of a
word, including the start and end pairs, is then a pair of neighbours in that
stream, so ``xs, ys = stream[:-1], stream[1:]`` with no loop per character.
"""

from __future__ import annotations

import importlib.resources
import operator
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Sequence

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


def parse_words(raw: bytes, source: str = "input", *, allow_empty: bool = False, byte_order_mark: bool = True) -> list[str]:
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


def read_words(path: str | os.PathLike) -> list[str]:
    """Read a UTF-8 text file of words, one per line (see ``parse_words``)."""
    return parse_words(read_bytes(path), source=os.fspath(path))


def read_bytes(path: str | os.PathLike) -> bytes:
    """A file's bytes; MakemoreError naming the file if it cannot be read."""
    with reading(path) as f:
        return f.read()


@contextmanager
def reading(path: str | os.PathLike):
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

    def __post_init__(self):
        if any(not isinstance(c, str) or len(c) != 1 for c in self.chars):
            raise MakemoreError("vocabulary entries must be single characters")
        if list(self.chars) != sorted(set(self.chars)):
            raise MakemoreError("vocabulary must be sorted and without repeats")
        if _SEPARATOR in self.chars:
            raise MakemoreError("vocabulary cannot hold a newline")
        if any("\ud800" <= c <= "\udfff" for c in self.chars):
            raise MakemoreError("vocabulary cannot hold a lone surrogate (not a Unicode character)")

    @classmethod
    def from_words(cls, words: Sequence[str]) -> "Vocabulary":
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

        Raises MakemoreError naming the first character not in the vocabulary.
        """
        cps = _code_points(_SEPARATOR + _SEPARATOR.join(words) + _SEPARATOR)
        known = _code_points("".join(self.chars)).astype(np.int64)
        is_sep = cps == ord(_SEPARATOR)
        if len(known) and known[-1] < LOOKUP_BELOW:  # one table lookup per character (ids + 1; 0 = unknown)
            table = np.zeros(max(int(known[-1]), ord(_SEPARATOR)) + 1, np.int32)
            table[known] = np.arange(1, len(known) + 1, dtype=np.int32)
            ids = table[np.minimum(cps, len(table) - 1)]
            ids[cps >= len(table)] = 0
            found = ids > 0
            pos = ids - 1
        else:
            pos = np.searchsorted(known, cps)
            found = known[np.minimum(pos, max(len(known) - 1, 0))] == cps if len(known) else np.zeros(len(cps), bool)
        bad = ~found & ~is_sep
        if bad.any():
            first = int(np.argmax(bad))
            ch = chr(int(cps[first]))
            word_index = int(np.count_nonzero(is_sep[:first])) - 1
            raise MakemoreError(
                f"character {ch!r} (U+{ord(ch):04X}) in word {words[word_index]!r} "
                "is not in the model's vocabulary"
            )
        return np.where(is_sep, BOUNDARY_ID, pos + 1).astype(np.int32)

    def to_json(self) -> list[str]:
        return list(self.chars)

    @classmethod
    def from_json(cls, chars) -> "Vocabulary":
        if not isinstance(chars, list):
            raise MakemoreError("vocabulary must be a list of characters")
        return cls(tuple(chars))


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
    return tuple(float(f) / total for f in fractions)


def encode_padded(words: Sequence[str], vocab: Vocabulary, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Words as rows ``[0, c1 .. cn, 0, 0, ...]`` of width block_size + 1, and their lengths.

    Inputs are row[:-1] and targets row[1:]; target position t counts while
    t <= n (the n characters and the end). Raises MakemoreError for a word
    longer than block_size - 1 characters.
    """
    lengths = np.fromiter(map(len, words), dtype=np.int32, count=len(words))
    if len(words) and int(lengths.max()) > block_size - 1:
        longest = words[int(np.argmax(lengths))]
        raise MakemoreError(
            f"word {longest[:40]!r} has {len(longest)} characters; the model handles at most {block_size - 1}"
        )
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
    """The words of each split and the vocabulary of all of them, with cached encodings."""

    vocab: Vocabulary
    words: dict[str, list[str]]

    local_only = False  # True for a process's part of a multi-host run (data.hosts.SlicedDataset)

    def __post_init__(self):
        self._cache: dict = {}

    @property
    def sizes(self) -> dict[str, int]:
        """Words in each split (of the whole list, also where this process holds a part)."""
        return {s: len(self.words[s]) for s in SPLITS}

    def combine(self, x):
        """Sums over the processes that hold parts of the data: here, x itself."""
        return x

    @classmethod
    def build(cls, words: Sequence[str], key: jax.Array, fractions=(0.8, 0.1, 0.1)) -> "Dataset":
        vocab = Vocabulary.from_words(words)
        return cls(vocab, dict(zip(SPLITS, split_words(words, key, fractions))))

    def sample(self, most: int, key: jax.Array) -> "Dataset":
        """The same vocabulary with each split cut to at most `most` of its words, drawn without
        replacement with key (a fixed key: the same words at every call); most = 0 keeps every word."""
        if most <= 0 or all(n <= most for n in self.sizes.values()):
            return self
        cached = ("sample", most, np.asarray(jax.random.key_data(key)).tobytes())
        if cached not in self._cache:
            self._cache[cached] = self._sample(most, key)
        return self._cache[cached]

    def _sample(self, most: int, key: jax.Array) -> "Dataset":
        words = {}
        for i, split in enumerate(SPLITS):
            ws = self.words[split]
            if len(ws) <= most:
                words[split] = ws
                continue
            # jax.random.choice(..., replace=False)'s draw: the permutation's first `most`
            rows = np.sort(permutation(jax.random.fold_in(key, i), len(ws))[:most])
            words[split] = _take(ws, rows)
        return Dataset(self.vocab, words)

    @property
    def max_word_len(self) -> int:
        if "max_word_len" not in self._cache:
            self._cache["max_word_len"] = max(max(map(len, ws)) for ws in self.words.values() if ws)
        return self._cache["max_word_len"]

    def nonempty(self) -> list[str]:
        return [s for s in SPLITS if self.sizes[s]]

    def pairs(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        if ("pairs", split) not in self._cache:
            self._cache[("pairs", split)] = bigram_pairs(self.words[split], self.vocab)
        return self._cache[("pairs", split)]

    def padded(self, split: str, block_size: int) -> tuple[np.ndarray, np.ndarray]:
        if ("padded", split, block_size) not in self._cache:
            self._cache[("padded", split, block_size)] = encode_padded(self.words[split], self.vocab, block_size)
        return self._cache[("padded", split, block_size)]
