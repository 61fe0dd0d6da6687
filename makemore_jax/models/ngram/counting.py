"""Counting the n-grams of a word list: every order, in suffix order (see the package docstring)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt

from ...data.words import BOUNDARY_ID, Vocabulary, word_lengths
from ...errors import MakemoreError

DENSE_MAX_CELLS = 2**22  # dense tables while V^N is at most this (16 MiB of int32 counts)
MAX_NGRAM_CELLS = 2**26  # positions × order held at once as n-gram rows by words_to_ngrams (256 MiB of int32 ids)
# The largest order training and tuning count. An order-N model looks back N − 1 characters: past the longest
# word + 1 it sees only more start boundaries, while its tables still grow as N² per character of the input
# (order n holds up to one n-gram of n ids per position, for every n up to N: names.txt at order 256 took 11 GiB).
MAX_ORDER = 64
TABLE_BYTES_PER_ID = 4  # an int32 id of an n-gram held at some order; its counts and suffix index add 3 more
RANK_TABLE_CELLS = 2**20  # ranking by a presence table of (rank, id) pairs while they fit this many cells
INT32_LIMIT = 2**31 - 1
INT64_LIMIT = 2**63 - 1


# ---- the n-grams of a word list ----------------------------------------------------


def check_order(order: object) -> None:
    if not (isinstance(order, (int, np.integer)) and not isinstance(order, bool) and order >= 1):
        raise MakemoreError(f"order must be an integer >= 1, got {order!r}")


def ngram_windows(stream_S: np.ndarray, order: int) -> np.ndarray:
    """Every predicted position of an encoded stream (``. w1 . w2 .``) as a row of `order` ids.

    Row i holds the ids at stream positions i+2−order .. i+1, oldest first: the
    context, then the predicted id. Ids before the boundary that opens the
    word are the boundary 0 too. Returns int32 (S−1, order).
    """
    pos_S = np.arange(len(stream_S))
    opened_S = np.maximum.accumulate(np.where(stream_S == BOUNDARY_ID, pos_S, 0))
    idx_PxN = pos_S[1:, None] - np.arange(order - 1, -1, -1)[None, :]
    inside_PxN = idx_PxN >= opened_S[:-1, None]  # the word so far and its opening boundary
    return np.where(inside_PxN, stream_S[np.maximum(idx_PxN, 0)], BOUNDARY_ID).astype(np.int32)


def words_to_ngrams(
    words: Sequence[str], vocab: Vocabulary, order: int, max_cells: int | None = MAX_NGRAM_CELLS
) -> np.ndarray:
    """The n-gram of every character and every end of the words: int32 (P, order), P = Σ (len + 1).

    Raises MakemoreError for a character outside the vocabulary, or if the
    rows would take more than max_cells ids (by default the fixed bound of
    scoring, 256 MiB; None: the caller has checked them against its own budget).
    """
    check_order(order)
    if not words:
        return np.zeros((0, order), np.int32)
    positions = int(word_lengths(words).sum()) + len(words)
    if max_cells is not None and positions * order > max_cells:  # Python integers: no overflow, whatever the order
        raise MakemoreError(
            f"order {order:,} is too large to count: the n-grams of {positions:,} positions would take "
            f"{positions * order * 4 / 2**30:,.2f} GiB of ids, and at most order {max(max_cells // positions, 1):,} "
            f"fits the {max_cells * 4 / 2**20:,.0f} MiB of ids held at once here"
        )
    return ngram_windows(vocab.encode_stream(words), order)


def order_too_large(order: int) -> str | None:
    """Why an order cannot be trained or tuned (above MAX_ORDER), or None.

    Decided from the order alone, before any data is read.
    """
    if order <= MAX_ORDER:
        return None
    return (
        f"order {order:,} is too large to count: at most order {MAX_ORDER} (an order-N model looks back N − 1 "
        f"characters, and past the longest word + 1 it sees only more start boundaries, while its tables grow as N² "
        f"per character of the input)"
    )


def table_bytes(positions: int, vocab_size: int, order: int) -> int:
    """At most how many bytes the n-grams of orders 1..order of `positions` positions take once counted.

    Counted as by ``all_levels``.

    Order n holds at most min(positions, V^n) distinct n-grams, each n int32
    ids, its raw and continuation counts and its suffix index. Computed with
    Python integers and a closed form once V^n passes positions, so it never
    forms V^order and takes O(log_V positions) steps whatever the order.
    """
    total, distinct, n = 0, 1, 0
    while n < order:
        n += 1
        distinct = min(distinct * vocab_size, positions)
        total += distinct * (n + 3)
        if (
            min(distinct * vocab_size, positions) == distinct
        ):  # every higher order holds as many: Σ_{m=n+1..order} (m + 3)
            rest = order - n
            total += distinct * (rest * (n + 1 + order) // 2 + 3 * rest)
            break
    return total * TABLE_BYTES_PER_ID


def largest_order_within(positions: int, vocab_size: int, limit: int, most: int = MAX_ORDER) -> int:
    """The largest order up to `most` whose table_bytes stays within limit bytes (0 if not even order 1)."""
    order = 0
    while order < most and table_bytes(positions, vocab_size, order + 1) <= limit:
        order += 1
    return order


def word_pieces(words: Sequence[str], most: int) -> Iterator[Sequence[str]]:
    """The words in consecutive slices of at most `most` positions (Σ len + 1) each; a longer word alone.

    What counting and scoring hold at once stays bounded whatever the list's length.
    """
    if most < 1:
        raise ValueError(f"a piece needs room for at least one position, got {most}")
    ends = word_lengths(words) + 1
    np.cumsum(ends, out=ends)
    start = 0
    while start < len(words):
        before = int(ends[start - 1]) if start else 0
        stop = max(int(np.searchsorted(ends, before + most, side="right")), start + 1)
        yield words[start:stop]
        start = stop


# ---- counting ----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NgramCounts:
    """How often each n-gram occurs.

    ngrams int32 (M, order): the distinct n-grams in suffix order (sorted by
    the last column, then the one before it, ...); counts int32 (M,), all > 0.
    """

    order: int
    vocab_size: int
    ngrams: np.ndarray
    counts: np.ndarray

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, NgramCounts)
            and (self.order, self.vocab_size) == (other.order, other.vocab_size)
            and np.array_equal(self.ngrams, other.ngrams)
            and np.array_equal(self.counts, other.counts)
        )


def power_fits(base: int, exponent: int, limit: int) -> bool:
    """Whether base^exponent <= limit, for integers base, exponent >= 0 and limit >= 1.

    Multiplies up one factor at a time and stops as soon as the product passes
    limit, so it takes at most log2(limit) + 1 steps whatever the exponent:
    ``V**order`` as an exact integer, for an order of 10^8, would take minutes
    and gigabytes before any size check could look at it.
    """
    if base <= 1 or exponent == 0:  # 0^n = 0 for n >= 1; 1^n = x^0 = 1
        return (0 if base == 0 and exponent else 1) <= limit
    product = 1
    for _ in range(exponent):
        product *= base
        if product > limit:
            return False
    return True


def dense_fits(vocab_size: int, order: int) -> bool:
    """Whether a V^order table stays within DENSE_MAX_CELLS cells (and so within int32 indices)."""
    return power_fits(vocab_size, order, DENSE_MAX_CELLS)


def choose_representation(representation: str, vocab_size: int, order: int) -> str:
    """'dense' or 'sparse'; 'auto' is dense while V^order fits DENSE_MAX_CELLS."""
    if representation == "auto":
        return "dense" if dense_fits(vocab_size, order) else "sparse"
    if representation not in ("dense", "sparse"):
        raise MakemoreError(f"representation must be auto, dense or sparse, got {representation!r}")
    if representation == "dense" and not dense_fits(vocab_size, order):
        raise MakemoreError(
            f"a dense order-{order} table over {vocab_size} ids has {vocab_size}^{order} cells, "
            f"more than {DENSE_MAX_CELLS:,}; use the sparse representation"
        )
    return representation


def flat_index(ids_BxK: jax.Array, vocab_size: int) -> jax.Array:
    """Σ_j ids[:, j] · V^j: the last column most significant, so increasing index is suffix order."""
    flat_B = jnp.zeros(ids_BxK.shape[:1], jnp.int32)
    for j in range(ids_BxK.shape[1] - 1, -1, -1):
        flat_B = flat_B * vocab_size + ids_BxK[:, j]
    return flat_B


@partial(jax.jit, static_argnames="vocab_size")
def dense_counts(ngrams_PxN: jax.Array, weights_P: jax.Array, vocab_size: int) -> jax.Array:
    """The flat V^N table of summed weights (1 per occurrence): one int32 scatter-add."""
    cells = vocab_size ** ngrams_PxN.shape[1]
    return jnp.zeros((cells,), jnp.int32).at[flat_index(ngrams_PxN, vocab_size)].add(weights_P)


def key_fits(vocab_size: int, order: int) -> bool:
    """Whether every n-gram of `order` ids below vocab_size has an int32 key (its flat index): V^order <= 2^31."""
    return power_fits(vocab_size, order, INT32_LIMIT + 1)


def key_dtype(vocab_size: int, order: int) -> np.dtype | None:
    """The dtype of an n-gram's flat index.

    int32 while V^order fits it (key_fits), int64 while it fits that, else None.
    """
    if key_fits(vocab_size, order):
        return np.dtype(np.int32)
    return np.dtype(np.int64) if power_fits(vocab_size, order, INT64_LIMIT + 1) else None


def sparse_method(vocab_size: int, order: int) -> str:
    """How the sparse path counts: 'keys' (one sort of int32 keys) where they fit, else 'ranks'."""
    return "keys" if key_fits(vocab_size, order) else "ranks"


def ngram_keys(ngrams_PxN: np.ndarray, vocab_size: int, dtype: npt.DTypeLike = np.int32) -> np.ndarray:
    """flat_index of each row on the host: dtype (P,).

    The keys must fit dtype (key_dtype; no step of the sum overflows).
    """
    key_P = np.zeros((ngrams_PxN.shape[0],), dtype)
    for j in range(ngrams_PxN.shape[1] - 1, -1, -1):
        key_P *= vocab_size
        key_P += ngrams_PxN[:, j]
    return key_P


def run_starts(sorted_M: np.ndarray) -> np.ndarray:
    """Where each run of equal values of a sorted array begins: int64 indices, 0 first (none if empty)."""
    new_M = np.empty(sorted_M.shape, bool)
    new_M[:1] = True
    np.not_equal(sorted_M[1:], sorted_M[:-1], out=new_M[1:])
    return np.flatnonzero(new_M)


def count_by_keys(ngrams_PxN: np.ndarray, weights_P: np.ndarray | None, vocab_size: int) -> NgramCounts:
    """The sparse counts by one sort of int32 keys; weights_P None counts each row once.

    Increasing key is suffix order, so the sorted distinct keys are the
    n-grams in the order NgramCounts keeps, and each count is the length (or
    the summed weights) of a run of equal keys. Needs key_fits.
    """
    P, order = ngrams_PxN.shape
    if P == 0:
        return NgramCounts(order, vocab_size, np.zeros((0, order), np.int32), np.zeros((0,), np.int32))
    keys_P = ngram_keys(ngrams_PxN, vocab_size)
    if weights_P is None:
        keys_P.sort()
        first = run_starts(keys_P)
        counts = np.diff(first, append=P)
    else:
        by_key = np.argsort(keys_P)
        keys_P = keys_P[by_key]
        first = run_starts(keys_P)
        counts = np.add.reduceat(np.asarray(weights_P)[by_key], first)
    return NgramCounts(order, vocab_size, _digits(keys_P[first], order, vocab_size), counts.astype(np.int32))


RANKING = ("presence", "sort", "pairs")


@partial(jax.jit, static_argnames=("vocab_size", "how"))
def refine_ranks(
    rank_P: jax.Array, ids_P: jax.Array, vocab_size: int, how: str = "presence"
) -> tuple[jax.Array, jax.Array]:
    """Each row's rank among the distinct (rank, id) pairs in sorted order, and how many there are.

    If rank_P ranks the rows' last n ids in suffix order and ids_P is the id
    before them, the result ranks their last n + 1 ids in suffix order. The
    pair is one key, rank · V + id, ranked by how (see ranking_method):
    'presence', the number of keys present below a row's own in a table of
    min(RANK_TABLE_CELLS, P·V) cells (a scatter and a cumsum); 'sort', its
    position among the sorted distinct keys (a sort and a binary search);
    'pairs', a sort on rank and id, where the key would overflow int32.
    """
    P = rank_P.shape[0]
    if how == "pairs":
        rank_s, ids_s, pos_s = jax.lax.sort((rank_P, ids_P, jnp.arange(P, dtype=jnp.int32)), num_keys=2)
        new_s = jnp.concatenate([jnp.ones((1,), bool), (rank_s[1:] != rank_s[:-1]) | (ids_s[1:] != ids_s[:-1])])
        ranks_s = jnp.cumsum(new_s, dtype=jnp.int32) - 1
        return jnp.zeros((P,), jnp.int32).at[pos_s].set(ranks_s), ranks_s[-1] + 1
    key_P = rank_P * vocab_size + ids_P
    if how == "presence":
        present = jnp.zeros((min(RANK_TABLE_CELLS, P * vocab_size),), jnp.int32).at[key_P].set(1)
        return (jnp.cumsum(present) - present)[key_P], present.sum()
    key_s = jnp.sort(key_P)
    ranks_s = jnp.cumsum(jnp.concatenate([jnp.ones((1,), bool), key_s[1:] != key_s[:-1]]), dtype=jnp.int32) - 1
    return ranks_s[jnp.searchsorted(key_s, key_P)], ranks_s[-1] + 1


def ranking_method(n_ranks: int, n_rows: int, vocab_size: int) -> str:
    """How refine_ranks can rank n_rows rows whose ranks so far are below n_ranks."""
    if n_ranks * vocab_size <= RANK_TABLE_CELLS or n_rows * vocab_size <= RANK_TABLE_CELLS:
        return "presence"
    return "sort" if n_ranks * vocab_size <= INT32_LIMIT else "pairs"


def suffix_ranks(ngrams_PxN: np.ndarray, vocab_size: int) -> list[jax.Array]:
    """For n = 1..N, each row's last n ids ranked among the distinct ones in suffix order: N arrays (P,).

    One refine_ranks per order, compiled once per row count and method.
    """
    P = ngrams_PxN.shape[0]
    rank_P = jnp.zeros((P,), jnp.int32)
    n_ranks, ranks = 1, []
    for j in range(ngrams_PxN.shape[1] - 1, -1, -1):
        column = jnp.asarray(np.ascontiguousarray(ngrams_PxN[:, j]))
        rank_P, distinct = refine_ranks(rank_P, column, vocab_size, ranking_method(n_ranks, P, vocab_size))
        n_ranks = int(distinct)
        ranks.append(rank_P)
    return ranks


@jax.jit
def _run_sums(runs_NxM: jax.Array, counts_M: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per order n, for rows whose run ids runs_NxM[n − 1] never decrease: which rows start a run,
    each run's summed counts, and how many runs of order n + 1 it holds. Three (N, M) arrays."""
    N, M = runs_NxM.shape
    starts_NxM = jnp.concatenate([jnp.ones((N, 1), bool), runs_NxM[:, 1:] != runs_NxM[:, :-1]], axis=1)
    raw_NxM = jax.vmap(lambda run: jax.ops.segment_sum(counts_M, run, num_segments=M))(runs_NxM)
    finer_NxM = jnp.concatenate([starts_NxM[1:], jnp.ones((1, M), bool)]).astype(jnp.int32)
    distinct_NxM = jax.vmap(lambda run, new: jax.ops.segment_sum(new, run, num_segments=M))(runs_NxM, finer_NxM)
    return starts_NxM, raw_NxM, distinct_NxM


def shape_bucket(n: int) -> int:
    """n rounded up to 1, 2, 3, 4, 6, 8, 12, 16, 24, ...: few distinct shapes, so few compilations."""
    if n <= 4:
        return max(n, 1)
    p = 1 << (n - 1).bit_length()
    return 3 * p // 4 if n <= 3 * p // 4 else p


def padded_rows(ngrams_PxN: np.ndarray) -> jax.Array:
    """The rows padded with all-boundary rows to a bucketed length (see shape_bucket), on the device."""
    return jnp.asarray(np.pad(ngrams_PxN, ((0, shape_bucket(len(ngrams_PxN)) - len(ngrams_PxN)), (0, 0))))


def count_weighted_rows(
    ngrams_PxN: np.ndarray, weights_P: np.ndarray | None, vocab_size: int, kind: str
) -> NgramCounts:
    """The counts of the rows by kind: 'dense', 'keys', 'ranks', or 'sparse' (keys where they fit, else ranks).

    weights_P: each row's weight (how often it occurred), None for once each.
    """
    P, order = ngrams_PxN.shape
    if kind == "sparse":
        kind = sparse_method(vocab_size, order)
    if P == 0:
        return NgramCounts(order, vocab_size, np.zeros((0, order), np.int32), np.zeros((0,), np.int32))
    if kind == "keys":
        return count_by_keys(ngrams_PxN, weights_P, vocab_size)
    if weights_P is None:
        weights_P = np.ones((P,), np.int32)
    rows, weights = _pad_repeating(ngrams_PxN), np.pad(weights_P, (0, shape_bucket(P) - P))  # padding: weight 0
    if kind == "dense":
        return counts_from_table(
            np.asarray(dense_counts(jnp.asarray(rows), jnp.asarray(weights), vocab_size)), order, vocab_size
        )
    # ranks: rank the rows in suffix order one id at a time, then sum the weights per rank
    top = suffix_ranks(rows, vocab_size)[-1]
    n = int(np.asarray(top).max()) + 1
    holder = np.zeros((n,), np.int64)
    holder[np.asarray(top)] = np.arange(len(rows))
    sums = jax.ops.segment_sum(jnp.asarray(weights), top, num_segments=len(rows))
    return NgramCounts(order, vocab_size, rows[holder], np.asarray(sums)[:n].astype(np.int32))


def _pad_repeating(rows: np.ndarray) -> np.ndarray:
    """Rows padded to a bucketed length by repeating the last row (the caller gives the copies weight 0)."""
    return np.pad(rows, ((0, shape_bucket(len(rows)) - len(rows)), (0, 0)), mode="edge")


def _digits(flat: np.ndarray, order: int, vocab_size: int) -> np.ndarray:
    """The n-grams of flat indices (see flat_index): int32 (len(flat), order)."""
    ngrams = np.empty((flat.size, order), np.int32)
    rest: np.ndarray = flat.astype(np.int32 if key_fits(vocab_size, order) else np.int64)
    for j in range(order):
        above = rest // vocab_size  # numpy divides by a scalar with SIMD; its divmod and % do not
        ngrams[:, j] = rest - above * vocab_size
        rest = above
    return ngrams


def counts_from_table(table: np.ndarray, order: int, vocab_size: int) -> NgramCounts:
    """The nonzero cells of a flat dense table, in increasing index, i.e. suffix order."""
    flat = np.flatnonzero(table)
    return NgramCounts(order, vocab_size, _digits(flat, order, vocab_size), table[flat].astype(np.int32))


def count_ngrams(words: Sequence[str], vocab: Vocabulary, order: int, representation: str = "auto") -> NgramCounts:
    """Count the n-grams of every character and end of the words (contexts padded with the boundary).

    representation: 'dense' (a scatter-add into V^order cells), 'sparse'
    (one sort of int32 keys while V^order fits them, else suffix-order ranks
    and a segment sum per rank) or 'auto' (sparse: sorting the keys beats
    filling and reading back a dense table at every order of names.txt). The
    result is the same whichever is used.
    """
    return count_ngram_rows(words_to_ngrams(words, vocab, order), vocab.size, representation)


def count_ngram_rows(ngrams_PxN: np.ndarray, vocab_size: int, representation: str = "auto") -> NgramCounts:
    """count_ngrams from the n-gram rows (P, order) int32, e.g. of ``words_to_ngrams``."""
    order = ngrams_PxN.shape[1]
    kind = "sparse" if representation == "auto" else choose_representation(representation, vocab_size, order)
    return count_weighted_rows(np.asarray(ngrams_PxN, np.int32), None, vocab_size, kind)


def vocabulary_of_chunks(chunks: Iterable[Sequence[str]]) -> Vocabulary:
    """The vocabulary of all the words of the chunks (a first pass over a list too large to hold)."""
    chars: set[str] = set()
    for chunk in chunks:
        for word in chunk:
            chars.update(word)
    return Vocabulary(tuple(sorted(chars)))


def read_word_chunks(path: str, chunk_words: int) -> Iterator[list[str]]:
    """The words of a UTF-8 file (one per line, as ``data.read_words``), chunk_words at a time.

    Reads line by line: memory holds one chunk, not the file.
    """
    if chunk_words < 1:
        raise MakemoreError(f"chunk size must be >= 1, got {chunk_words}")
    try:
        f = open(path, "rb")
    except OSError as err:
        raise MakemoreError(f"{path}: cannot read ({err.strerror})") from None
    with f:
        chunk: list[str] = []
        for number, line in enumerate(f, start=1):
            if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            try:
                word = line.decode("utf-8").strip()
            except UnicodeDecodeError as err:
                raise MakemoreError(
                    f"{path}: line {number} is not valid UTF-8 (byte 0x{line[err.start]:02x})"
                ) from None
            if word:
                chunk.append(word)
            if len(chunk) == chunk_words:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


# ---- every order from the top one ------------------------------------------------------


@dataclass(frozen=True)
class Level:
    """The n-grams of one order n.

    ngrams int32 (M, n) in suffix order; raw: how often each occurs;
    continuation: how many distinct ids precede it (at order N, the raw
    count); suffix: the index of ``ngrams[:, 1:]`` in order n − 1 (zeros at
    order 1).
    """

    ngrams: np.ndarray
    raw: np.ndarray
    continuation: np.ndarray
    suffix: np.ndarray


def all_levels(counts: NgramCounts, how: str = "auto") -> list[Level]:
    """Orders 1..N from the order-N counts; levels[n − 1] is order n.

    Order n's n-grams are the distinct last n ids of order N's. The rows are
    in suffix order, so each is a run of neighbours: raw counts add up over
    the run, and the continuation count is the number of order-(n + 1) runs
    in it, i.e. of distinct ids seen before the n-gram. how: 'keys' (the runs
    of int32 or int64 keys, key_dtype), 'ranks' (the runs of suffix ranks, any
    vocabulary) or 'auto' (keys where they fit); the levels are the same.
    """
    N, M, V = counts.order, len(counts.counts), counts.vocab_size
    if M == 0:
        return [Level(np.zeros((0, n), np.int32), *(np.zeros((0,), np.int32),) * 3) for n in range(1, N + 1)]
    if how == "auto":
        how = "keys" if key_dtype(V, N) is not None else "ranks"
    return levels_by_keys(counts) if how == "keys" else _levels_by_ranks(counts)


def levels_by_keys(counts: NgramCounts) -> list[Level]:
    """all_levels from the sorted keys, one order at a time from the top (needs keys that fit int64, key_dtype).

    An n-gram's key divided by V is the key of its last n − 1 ids, so order
    n − 1's runs are runs of equal quotients of order n's sorted keys.
    """
    V, N = counts.vocab_size, counts.order
    dtype = key_dtype(V, N)
    if dtype is None:
        raise ValueError(f"order-{N} keys over {V} ids overflow int64: rank the rows instead (how='ranks')")
    keys, raw = ngram_keys(counts.ngrams, V, dtype), np.asarray(counts.counts, np.int32)
    ngrams, continuation = np.array(counts.ngrams, np.int32), raw
    levels = []
    for n in range(N, 1, -1):
        lower = keys // V  # the key of ngrams[:, 1:]
        first = run_starts(lower)
        sizes = np.diff(first, append=len(lower))  # order n − 1's continuation counts
        levels.append(Level(ngrams, raw, continuation, np.repeat(np.arange(len(first), dtype=np.int32), sizes)))
        ends = np.cumsum(raw, dtype=np.int64)[first + sizes - 1]  # the raw counts summed up to each run's end
        keys = lower[first]
        ngrams, raw, continuation = (
            _digits(keys, n - 1, V),
            np.diff(ends, prepend=0).astype(np.int32),
            sizes.astype(np.int32),
        )
    levels.append(Level(ngrams, raw, continuation, np.zeros((len(keys),), np.int32)))
    return levels[::-1]


def _levels_by_ranks(counts: NgramCounts) -> list[Level]:
    """all_levels by suffix_ranks of the rows: for vocabularies whose keys overflow int32."""
    N, M, V = counts.order, len(counts.counts), counts.vocab_size
    rows = _pad_repeating(counts.ngrams)  # the copies join the last row's runs, with count 0
    weights = jnp.asarray(np.pad(counts.counts, (0, len(rows) - M)))
    runs = jnp.stack(suffix_ranks(rows, V))  # in suffix order, so each order's runs are ranks that never decrease
    starts, raw, distinct = (np.asarray(a) for a in _run_sums(runs, weights))
    runs_host = np.asarray(runs)
    levels = []
    for n in range(1, N + 1):
        first = np.flatnonzero(starts[n - 1, :M])  # the first row of each run
        k = len(first)
        raw_n = raw[n - 1, :k].astype(np.int32)
        levels.append(
            Level(
                np.ascontiguousarray(counts.ngrams[first, N - n :]),
                raw_n,
                raw_n if n == N else distinct[n - 1, :k].astype(np.int32),
                runs_host[n - 2, first].astype(np.int32) if n > 1 else np.zeros((k,), np.int32),
            )
        )
    return levels
